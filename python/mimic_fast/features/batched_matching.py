"""``mimic_fast.match_descriptors``: brute-force L2 k=2 matching with Lowe's ratio test for B
pairs of padded descriptor sets in one call, in torch (the same code on CPU and CUDA).

The decisions are OpenCV's (``cv2.BFMatcher(cv2.NORM_L2).knnMatch(k=2)`` then
``m.distance < ratio * n.distance``, :func:`mimic_fast.features.matching.ratio_match`):

- OpenCV reports ``distance`` as the float32 square root of a float32 sum of squared
  differences. For integer-valued descriptors (SIFT's are float32 holding 0..255) every partial
  sum is an integer below 2**24, so that sum is exact whatever the order. Here the squared
  distances come from one batched matmul (|b|^2 / 2 - a.b per candidate, |a|^2 + 2 x that for
  the best two), exact in float32 under the bound :func:`_exact_in_float32` checks (also with
  TF32 or bfloat16 matmuls on CUDA), in float64 beyond it. The float32 square roots of the two smallest are then OpenCV's two
  distances bit for bit (sqrt is monotone: the two smallest squared distances give the two
  smallest distances).
- The ratio test compares the float32 distances promoted to float64, as the Python test does
  with OpenCV's ``DMatch.distance``.
- Ties: OpenCV ranks equal float32 distances by train index (lower first); so does the
  argmin here. A tie for the best distance never passes anyway (d1 < ratio * d1 is false for
  ratio <= 1).
- Queries with fewer than two valid neighbours never pass, as in the published code.

Non-integer descriptors are not checked for (that would cost a pass over them): their
distances carry the matmul's rounding, OpenCV's its summation order's, so decisions may then
differ from OpenCV's at near-ties. Bit equality is claimed for integer-valued ones only.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Elements of the [pairs, queries, candidates] score block computed at once. CPU: 1 MiB of
# float32, so the reductions read it from cache (2**17..2**22 swept on mining batches: 2**18
# fastest, 1.8x faster per pair than 128 MiB). CUDA: 128 MiB, few enough launches; 256 pairs
# x 2000 x 2000 run in 32 blocks.
_BLOCK_ELEMENTS = {"cpu": 1 << 18, "cuda": 1 << 25}
_FLOAT32_EXACT = 1 << 24  # integers below this are exact in float32
# Integers up to this are exact in bfloat16 (8 significant bits), so also in TF32: the float32
# matmul stays exact whatever torch.set_float32_matmul_precision says (CUDA may then round
# its inputs to TF32 or bfloat16; products are still summed in float32).
_REDUCED_PRECISION_EXACT = 256


def match_descriptors(desc1: Any, desc2: Any, counts1: Any = None, counts2: Any = None,
                      ratio: float = 0.7) -> Any:
    """For each view-1 descriptor of B pairs, its ratio-test match in view 2, or -1.

    Args:
        desc1: [B, N1, D] descriptors of view 1 per pair (float32, float64 or uint8), numpy
            array or torch tensor (CPU or CUDA); rows i >= counts1[b] are padding (any finite
            values; ignored, but values outside [0, 256] there make the slower float64
            path run: pad with zeros).
        desc2: [B, N2, D] descriptors of view 2, the same kind, dtype and device as desc1.
        counts1, counts2: [B] integers, valid rows per pair (in [0, N1] and [0, N2]); None
            means all.
        ratio: Lowe ratio, 0 < ratio <= 1; a query matches its nearest neighbour j when
            dist(nearest) < ratio * dist(second nearest), compared as OpenCV's float32
            distances promoted to float64.

    Returns:
        [B, N1] int64: the matched view-2 row, or -1 (no pass, fewer than two valid view-2
        rows, or padding); numpy in, numpy out; torch in, torch out on desc1's device.
    """
    import torch

    numpy_in = isinstance(desc1, np.ndarray)
    _check_kind(desc1, desc2)
    if numpy_in:
        desc1 = torch.from_numpy(np.ascontiguousarray(desc1))
        desc2 = torch.from_numpy(np.ascontiguousarray(desc2))
    B, N1, N2, D = _check_shapes(desc1, desc2)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.number)) \
            or not 0 < float(ratio) <= 1:
        raise ValueError(f"ratio must be a number in (0, 1], got {ratio!r}")
    device = desc1.device
    c1 = _counts("counts1", counts1, B, N1, device)
    c2 = _counts("counts2", counts2, B, N2, device)
    out = torch.full((B, N1), -1, dtype=torch.int64, device=device)
    if B and N1 and N2 >= 2:
        dtype = torch.float32 if _exact_in_float32(desc1, desc2) else torch.float64
        budget = _BLOCK_ELEMENTS.get(device.type, _BLOCK_ELEMENTS["cuda"])
        for pairs, n1, n2 in _blocks(c1.cpu().numpy(), c2.cpu().numpy(), budget):
            sel = torch.from_numpy(pairs).to(device)
            b = desc2.narrow(1, 0, n2).index_select(0, sel).to(dtype)
            rows = max(1, budget // (len(pairs) * n2))  # < n1 only for one pair over budget
            for r0 in range(0, n1, rows):
                r1 = min(n1, r0 + rows)
                a = desc1.narrow(1, r0, r1 - r0).index_select(0, sel).to(dtype)
                out[sel, r0:r1] = _match_block(a, b, c2[sel], float(ratio))
    rows_valid = torch.arange(N1, device=device)[None, :] < c1[:, None]
    out = torch.where(rows_valid & (c2[:, None] >= 2), out, -1)
    return out.numpy() if numpy_in else out


def _blocks(c1: np.ndarray, c2: np.ndarray, budget: int):
    """(pair indices, rows, candidates) of blocks of pairs with similar counts, each padded to
    its own largest counts only (a batch's largest view would otherwise set the cost of every
    pair), within ``budget`` score elements where a pair allows; pairs that cannot match
    (no query or fewer than two candidates) are left out."""
    block: list[int] = []
    m1 = m2 = 0
    for p in np.lexsort((c1, c2)):  # by candidates, then queries: neighbours alike
        if c1[p] == 0 or c2[p] < 2:
            continue
        n1, n2 = max(m1, int(c1[p])), max(m2, int(c2[p]))
        if block and (len(block) + 1) * n1 * n2 > budget:
            yield np.array(block, np.int64), m1, m2
            block, n1, n2 = [], int(c1[p]), int(c2[p])
        block.append(int(p))
        m1, m2 = n1, n2
    if block:
        yield np.array(block, np.int64), m1, m2


def _match_block(a, b, c2, ratio: float):
    """[P, R] ratio-test matches of query rows a [P, R, D] against b [P, N2, D] (c2 [P] valid
    rows each): the two smallest squared distances from one batched matmul."""
    import torch

    N2 = b.shape[1]
    half_b = 0.5 * (b * b).sum(-1)  # [P, N2]; padding rows can never be nearest:
    half_b = half_b.masked_fill(torch.arange(N2, device=b.device)[None, :] >= c2[:, None],
                                float("inf"))
    # |a - b|^2 = |a|^2 + 2 (|b|^2 / 2 - a.b); the row constant |a|^2 does not change the order
    score = torch.baddbmm(half_b[:, None, :], a, b.transpose(1, 2), alpha=-1.0)
    first, idx = score.min(-1, keepdim=True)  # the lowest index among equal minima, as OpenCV
    second = score.scatter(-1, idx, float("inf")).amin(-1, keepdim=True)
    sq = (a * a).sum(-1, keepdim=True) + 2.0 * torch.cat([first, second], -1)  # [P, R, 2]
    dist = opencv_distance(sq)
    passed = dist[..., 0] < ratio * dist[..., 1]
    return torch.where(passed, idx[..., 0], -1)


def opencv_distance(sq):
    """OpenCV's ``DMatch.distance`` for squared distances ``sq`` (its float32 sum): the
    correctly rounded float32 square root, returned as float64 (as Python compares it).

    Not ``sq.float().sqrt()``: torch's vectorised float32 sqrt on CPU is not correctly rounded
    (1 ulp off for about a fifth of the integers below 2**24, e.g. 6000003). The float64 root
    rounded to float32 is: a float32's root lies at least 2**-49 (relative) from a float32
    rounding midpoint, far more than the float64 sqrt's error, so the rounding cannot flip."""
    import torch

    root = sq.to(torch.float32).clamp_min(0).to(torch.float64).sqrt()
    return root.to(torch.float32).to(torch.float64)


def _exact_in_float32(desc1, desc2) -> bool:
    """True when the float32 path is exact for integer-valued descriptors: values in
    [0, 256] with 2 * D * max^2 < 2**24 keep every quantity of it an integer or half-integer
    below 2**23 (SIFT's 0..255 with D = 128: 16,646,400), whatever the matmul precision.
    Raises on NaN or inf. One host sync per input."""
    import torch

    D = desc1.shape[2]
    exact = True
    for name, x in (("desc1", desc1), ("desc2", desc2)):
        if not x.numel():
            continue
        lo, hi = (float(v) for v in torch.aminmax(x))  # NaN propagates into both
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{name} must be finite, found NaN or inf")
        exact = exact and lo >= 0 and hi <= _REDUCED_PRECISION_EXACT \
            and 2 * D * hi * hi < _FLOAT32_EXACT
    return exact


def _check_kind(desc1: Any, desc2: Any) -> None:
    import torch

    for name, x in (("desc1", desc1), ("desc2", desc2)):
        if not isinstance(x, (np.ndarray, torch.Tensor)):
            raise ValueError(f"{name} must be a numpy array or a torch tensor, got "
                             f"{type(x).__module__}.{type(x).__qualname__}")
    if type(desc1) is not type(desc2) and not (
            isinstance(desc1, torch.Tensor) and isinstance(desc2, torch.Tensor)):
        raise ValueError(f"desc1 and desc2 must be both numpy arrays or both torch tensors, got "
                         f"{type(desc1).__qualname__} and {type(desc2).__qualname__}")


def _check_shapes(desc1, desc2) -> tuple[int, int, int, int]:
    import torch

    for name, x in (("desc1", desc1), ("desc2", desc2)):
        if x.dim() != 3:
            raise ValueError(f"{name} must have shape [B, N, D], got {list(x.shape)}")
        if x.dtype not in (torch.float32, torch.float64, torch.uint8):
            raise ValueError(f"{name} must be float32, float64 or uint8, got "
                             f"{str(x.dtype).replace('torch.', '')}")
    if desc1.dtype != desc2.dtype:
        raise ValueError(f"desc2 must have desc1's dtype {str(desc1.dtype)[6:]}, got "
                         f"{str(desc2.dtype)[6:]}")
    if desc1.device != desc2.device:
        raise ValueError(f"desc2 must be on desc1's device {desc1.device}, got {desc2.device}")
    (B, N1, D), (B2, N2, D2) = desc1.shape, desc2.shape
    if (B2, D2) != (B, D):
        raise ValueError(f"desc2 must have shape [B, N2, D] = [{B}, N2, {D}], got "
                         f"{list(desc2.shape)}")
    return int(B), int(N1), int(N2), int(D)


def _counts(name: str, counts: Any, B: int, N: int, device):
    """counts as an int64 tensor [B] on ``device``, checked to lie in [0, N]."""
    import torch

    if counts is None:
        return torch.full((B,), N, dtype=torch.int64, device=device)
    if isinstance(counts, torch.Tensor):
        integer = not (counts.is_floating_point() or counts.is_complex()) \
            and counts.dtype != torch.bool
        dtype = str(counts.dtype).replace("torch.", "")
    else:
        counts = np.asarray(counts)
        integer, dtype = counts.dtype.kind in "iu", str(counts.dtype)
    if tuple(counts.shape) != (B,):
        raise ValueError(f"{name} must have shape [B] = [{B}], got {list(counts.shape)}")
    if not integer:
        raise ValueError(f"{name} must hold integers, got {dtype}")
    counts = torch.as_tensor(counts, device=device).to(torch.int64)
    if B:
        lo, hi = int(counts.min()), int(counts.max())
        if lo < 0 or hi > N:
            raise ValueError(f"{name} must be in [0, {N}], got values in [{lo}, {hi}]")
    return counts


def pad_descriptors(descriptors: list[np.ndarray], dim: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """(desc [B, N, dim] float32 zero-padded, counts [B] int64) of B descriptor sets [N_b, dim],
    as :func:`match_descriptors` takes them."""
    n = max((len(d) for d in descriptors), default=0)
    out = np.zeros((len(descriptors), n, dim), np.float32)
    for b, d in enumerate(descriptors):
        out[b, : len(d)] = d
    return out, np.array([len(d) for d in descriptors], np.int64)


def index_pairs(matched: np.ndarray) -> np.ndarray:
    """[M, 2] int64 (view-1 row, view-2 row) of one pair's [N1] :func:`match_descriptors` row,
    in query order, as :func:`mimic_fast.features.matching.ratio_match` returns them."""
    rows = np.nonzero(matched >= 0)[0]
    return np.stack([rows, matched[rows]], axis=1).astype(np.int64)
