"""Readable numpy twin of the native patch-overlap kernels: the definition of the semantics.

It follows DESIGN.md "patch_overlap semantics" step by step and is bit-identical to the C++
and CUDA kernels (same counter-based RNG, same double-precision arithmetic in the same order,
no fused multiply-add). It is written for clarity, not speed: tests compare the kernels to it.
"""

from __future__ import annotations

import math

import numpy as np

from mimic_fast.geometry.result import PatchOverlap

_U64 = np.uint64
SINGULAR_DET = 1e-12  # |det(H / s)| below this is singular; s = power of two above max|h_ij|


# --- counter-based sampling (csrc/common/counter_rng.h) --------------------------------------


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic)."""
    z = np.asarray(z, dtype=_U64)
    with np.errstate(over="ignore"):
        z = z ^ (z >> _U64(30))
        z = z * _U64(0xBF58476D1CE4E5B9)
        z = z ^ (z >> _U64(27))
        z = z * _U64(0x94D049BB133111EB)
        z = z ^ (z >> _U64(31))
    return z


def patch_key(seed: int, direction: int, patch: np.ndarray) -> np.ndarray:
    """Key of each (seed, direction, patch); direction 0 = view 1 -> 2, 1 = view 2 -> 1."""
    with np.errstate(over="ignore"):
        k = mix64(np.array([seed], dtype=_U64) ^ _U64(0x6A09E667F3BCC909))
        k = mix64(k ^ (_U64(direction) + _U64(1)) * _U64(0x9E3779B97F4A7C15))
        p = np.asarray(patch, dtype=_U64)
        return mix64(k ^ (p + _U64(1)) * _U64(0xD1B54A32D192ED03))


def random_offsets(seed: int, direction: int, num_patches: int, samples: int, patch: int):
    """[P, S] pixel offsets (dy * patch + dx) drawn uniformly with replacement per patch."""
    keys = patch_key(seed, direction, np.arange(num_patches))[:, None]
    counters = np.arange(samples, dtype=_U64)[None, :] + _U64(1)
    with np.errstate(over="ignore"):
        h = mix64(keys ^ counters * _U64(0x8CB92BA72F3D8DD7))
    area = _U64(patch * patch)
    return (((h >> _U64(32)) * area) >> _U64(32)).astype(np.int64)


def grid_columns(samples: int) -> int:
    g = 1
    while g * g < samples:
        g += 1
    return g


def grid_offsets(num_patches: int, samples: int, patch: int):
    """[P, S] offsets of the stratified pattern: sample i at the centre of cell
    (i % gx, i // gx) of a gx x gy grid, gx = ceil(sqrt(S)), gy = ceil(S / gx), floored."""
    gx = grid_columns(samples)
    gy = -(-samples // gx)
    i = np.arange(samples)
    dx = ((2 * (i % gx) + 1) * patch) // (2 * gx)
    dy = ((2 * (i // gx) + 1) * patch) // (2 * gy)
    return np.broadcast_to(dy * patch + dx, (num_patches, samples))


def sample_points(nrows: int, ncols: int, patch: int, offsets: np.ndarray):
    """Integer pixel coordinates (x, y) as float64 [P, S] of each patch's samples."""
    p = np.arange(nrows * ncols)[:, None]
    x = (p % ncols) * patch + offsets % patch
    y = (p // ncols) * patch + offsets // patch
    return x.astype(np.float64), y.astype(np.float64)


# --- homography (csrc/common/homography.h) ----------------------------------------------------


def invert_homography(H: np.ndarray) -> np.ndarray | None:
    """inv(H) by cofactors of H / s (s the power of two above max|h_ij|), or None when non-finite or singular."""
    h = [float(v) for v in np.asarray(H, dtype=np.float64).reshape(9)]
    if not all(np.isfinite(h)):
        return None
    scale = max(abs(v) for v in h)
    if not scale > 0.0:
        return None
    exponent = math.frexp(scale)[1]
    if exponent > 1023:  # 2**exponent overflows: the kernels' scale is inf, det 0, singular
        return None
    scale = math.ldexp(1.0, exponent)  # a power of two: exact normalisation
    a = [v / scale for v in h]
    c00 = a[4] * a[8] - a[5] * a[7]
    c01 = a[5] * a[6] - a[3] * a[8]
    c02 = a[3] * a[7] - a[4] * a[6]
    det = a[0] * c00 + a[1] * c01 + a[2] * c02
    if not abs(det) >= SINGULAR_DET:
        return None
    d = det * scale
    if d == 0.0:  # det * scale underflows (subnormal H): the kernels' inverse is inf/NaN
        return None
    inv = np.array(
        [
            c00 / d,
            (a[2] * a[7] - a[1] * a[8]) / d,
            (a[1] * a[5] - a[2] * a[4]) / d,
            c01 / d,
            (a[0] * a[8] - a[2] * a[6]) / d,
            (a[2] * a[3] - a[0] * a[5]) / d,
            c02 / d,
            (a[1] * a[6] - a[0] * a[7]) / d,
            (a[0] * a[4] - a[1] * a[3]) / d,
        ]
    )
    if not np.all(np.isfinite(inv)):
        return None
    return inv.reshape(3, 3)


def project_labels(H, x, y, ncols: int, nrows: int, patch: int) -> np.ndarray:
    """Target patch of each point under H, or -1 ("out": w <= 0, not finite, or outside the
    ncols*patch x nrows*patch tiled area)."""
    h = np.asarray(H, dtype=np.float64).reshape(9)
    with np.errstate(all="ignore"):
        X = h[0] * x + h[1] * y + h[2]
        Y = h[3] * x + h[4] * y + h[5]
        W = h[6] * x + h[7] * y + h[8]
        u = X / W
        v = Y / W
        inside = (W > 0) & (u >= 0) & (v >= 0) & (u < ncols * patch) & (v < nrows * patch)
    labels = np.full(x.shape, -1, dtype=np.int64)
    col = u[inside].astype(np.int64) // patch
    row = v[inside].astype(np.int64) // patch
    labels[inside] = row * ncols + col
    return labels


# --- voting and de-duplication -----------------------------------------------------------------


def vote(labels) -> int:
    """Most frequent label ("out" = -1 included); a tie goes to the label that reached the
    winning count first in sample order."""
    counts: dict[int, int] = {}
    best, best_count = -1, 0
    for label in labels:
        label = int(label)
        counts[label] = counts.get(label, 0) + 1
        if counts[label] > best_count:
            best, best_count = label, counts[label]
    return best


def match_direction(H, src: tuple[int, int], tgt: tuple[int, int], patch: int, offsets):
    """Matches [P_src] (target patch or -1) of one direction and their count. src/tgt are
    (nrows, ncols). Source patches are scanned in raster order; the first one voting for a
    target claims it, later ones voting for it get no match (they are not reassigned)."""
    x, y = sample_points(src[0], src[1], patch, offsets)
    labels = project_labels(H, x, y, tgt[1], tgt[0], patch)
    claimed = np.zeros(tgt[0] * tgt[1], dtype=bool)
    matches = np.full(src[0] * src[1], -1, dtype=np.int32)
    for s in range(src[0] * src[1]):
        t = vote(labels[s])
        if t >= 0 and not claimed[t]:
            claimed[t] = True
            matches[s] = t
    return matches, int((matches >= 0).sum())


def patch_overlap_reference(
    H,
    image_size=(224, 224),
    patch_size: int = 16,
    samples: int = 100,
    seed: int = 0,
    sampling: str = "random",
) -> PatchOverlap:
    """Reference for :func:`mimic_fast.patch_overlap` on numpy input (see its docstring).

    H: [3, 3] or [B, 3, 3] maps view-1 pixel (x, y) to view 2. image_size: (h, w) of both
    views or ((h1, w1), (h2, w2)). Inputs are assumed valid (the public function checks)."""
    Hs = np.asarray(H, dtype=np.float64)
    single = Hs.ndim == 2
    Hs = Hs.reshape(-1, 3, 3)
    (h1, w1), (h2, w2) = _view_sizes(image_size)
    g1 = (h1 // patch_size, w1 // patch_size)
    g2 = (h2 // patch_size, w2 // patch_size)
    P1, P2 = g1[0] * g1[1], g2[0] * g2[1]
    if sampling == "grid":
        off_fwd = grid_offsets(P1, samples, patch_size)
        off_bwd = grid_offsets(P2, samples, patch_size)
    else:
        off_fwd = random_offsets(seed, 0, P1, samples, patch_size)
        off_bwd = random_offsets(seed, 1, P2, samples, patch_size)

    B = Hs.shape[0]
    out = PatchOverlap(
        overlap=np.zeros(B, np.float32),
        valid=np.zeros(B, bool),
        forward=np.full((B, P1), -1, np.int32),
        backward=np.full((B, P2), -1, np.int32),
        correspondences=np.full((B, P1), -1, np.int32),
        counts=np.zeros((B, 2), np.int32),
    )
    for b in range(B):
        inv = invert_homography(Hs[b])
        if inv is None:
            continue
        fwd, cf = match_direction(Hs[b], g1, g2, patch_size, off_fwd)
        bwd, cb = match_direction(inv, g2, g1, patch_size, off_bwd)
        out.forward[b], out.backward[b] = fwd, bwd
        out.counts[b] = (cf, cb)
        out.overlap[b] = np.float32(min(cf / P1, cb / P2))
        out.valid[b] = True
        if cf < cb:
            out.correspondences[b] = fwd
        else:  # a tie stores the backward direction, inverted
            s = np.nonzero(bwd >= 0)[0]
            out.correspondences[b, bwd[s]] = s
    if single:
        return PatchOverlap(*(a[0] for a in out))
    return out


def _view_sizes(image_size):
    if len(image_size) == 2 and all(np.ndim(s) == 0 for s in image_size):
        return (int(image_size[0]), int(image_size[1])), (int(image_size[0]), int(image_size[1]))
    (h1, w1), (h2, w2) = image_size
    return (int(h1), int(w1)), (int(h2), int(w2))
