"""``mimic_fast.patch_overlap``: batched patch correspondences between two views.

Argument checks and device dispatch live here; the numbers come from the native kernels
(csrc/overlap). The definition of every output is the numpy reference,
:func:`mimic_fast.geometry.reference.patch_overlap_reference`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mimic_fast import _native
from mimic_fast.geometry.result import PatchOverlap

_SAMPLINGS = ("random", "grid")
# The vote's exact fallback for patches spread over many target patches is quadratic in the
# samples; 1024 (ten times the paper's 100) keeps its worst case bounded.
_MAX_SAMPLES = 1024
_MAX_PATCHES = 1 << 24  # per view; patch indices are int32 in the kernels


def patch_overlap(
    H: Any,
    image_size: tuple = (224, 224),
    patch_size: int = 16,
    samples: int = 100,
    seed: int = 0,
    sampling: str = "random",
    device: Any = None,
) -> PatchOverlap:
    """Patch correspondences and overlap of view pairs related by homographies (MIMIC).

    For each direction (view 1 -> 2 with H, view 2 -> 1 with inv(H)), every source patch
    draws ``samples`` pixels, projects them, and votes for the target patch most of them land
    in ("out" counts as a label; ties go to the label that reached the winning count first).
    Scanning source patches in raster order, the first to vote for a target claims it.
    overlap = min(matches_fwd / P1, matches_bwd / P2). Exact rules: DESIGN.md and
    :mod:`mimic_fast.geometry.reference`.

    Args:
        H: [3, 3] or [B, 3, 3] float32/float64 numpy array or torch tensor (CPU or CUDA),
            mapping view-1 pixel (x, y) to view 2.
        image_size: (h, w) of both views, or ((h1, w1), (h2, w2)). Patches tile the
            top-left (h // p) x (w // p) patches of each view.
        patch_size: patch side p in pixels.
        samples: sample points per patch.
        seed: sampling key, 0 <= seed < 2**64. Samples depend on (seed, direction, patch,
            sample) only, never on a pair's position in the batch.
        sampling: "random" (uniform with replacement, as the reference code) or "grid"
            (deterministic stratified: sample i at the centre of cell (i % gx, i // gx) of a
            gx x gy grid, gx = ceil(sqrt(samples)), gy = ceil(samples / gx); seed is unused).
        device: None (where H lives), "cpu" or "cuda". "cuda" without a CUDA build or GPU
            raises RuntimeError; torch results come back on H's device.

    Returns:
        :class:`PatchOverlap` (overlap [B] float32, valid [B] bool, forward [B, P1],
        backward [B, P2], correspondences [B, P1], counts [B, 2] int32); numpy in, numpy out;
        torch in, torch out. A [3, 3] H gives the fields without the batch dimension. A
        non-finite or singular H gives valid=False and overlap 0, never an exception.
    """
    params = check_parameters(image_size, patch_size, samples, seed, sampling)
    if _is_torch_tensor(H):
        from mimic_fast.geometry.overlap_torch import patch_overlap_torch

        return patch_overlap_torch(H, params, device)
    return _patch_overlap_numpy(H, params, device)


def keep_pair(overlap: Any, low: float = 0.5, high: float = 0.75) -> Any:
    """True where low < overlap < high (strict, the MIMIC filter); works on floats, numpy
    arrays and torch tensors."""
    if not low < high:
        raise ValueError(f"keep_pair needs low < high, got low={low}, high={high}")
    return (overlap > low) & (overlap < high)


def check_parameters(
    image_size: Any, patch_size: Any, samples: Any, seed: Any, sampling: Any
) -> tuple[tuple[int, int, int, int], int, int, int, bool]:
    """(sizes (h1, w1, h2, w2), patch, samples, seed, grid) as the kernels take them, or a
    ValueError naming the argument. The one check before the kernels: patch_overlap and the
    torch custom op (reachable directly as torch.ops.mimic_fast.patch_overlap) both call it,
    since the kernels trust these numbers (samples=0 reads an empty label buffer and crashes
    the process; a patch larger than a view gives 0/0 overlaps, a negative one nonsense)."""
    sizes = _check_sizes(image_size, patch_size)
    _check_int("samples", samples, 1, _MAX_SAMPLES)
    _check_int("seed", seed, 0, (1 << 64) - 1)
    if sampling not in _SAMPLINGS:
        raise ValueError(f"sampling must be one of {_SAMPLINGS}, got {sampling!r}")
    return sizes, int(patch_size), int(samples), int(seed), sampling == "grid"


def check_homographies(H: Any) -> None:
    """ValueError unless H is [3, 3] or [B, 3, 3] float32/float64."""
    shape = tuple(H.shape)
    if len(shape) not in (2, 3) or shape[-2:] != (3, 3):
        raise ValueError(f"H must have shape [3, 3] or [B, 3, 3], got {list(shape)}")
    dtype = str(H.dtype).replace("torch.", "")
    if dtype not in ("float32", "float64"):
        raise ValueError(f"H must be float32 or float64, got {dtype}")


def _patch_overlap_numpy(H: Any, params: tuple, device: Any) -> PatchOverlap:
    if not isinstance(H, np.ndarray):
        raise ValueError(
            f"H must be a numpy array or a torch tensor, got {type(H).__module__}."
            f"{type(H).__qualname__}"
        )
    check_homographies(H)
    device = "cpu" if device is None else str(device)
    if device not in ("cpu", "cuda"):
        raise ValueError(
            f"device must be None, 'cpu' or 'cuda' for numpy input (the current CUDA device; "
            f"pass a torch tensor to pick another), got {device!r}"
        )
    single = H.ndim == 2
    Hc = np.ascontiguousarray(H.reshape(-1, 3, 3))
    sizes, patch, samples, seed, grid = params
    P1 = (sizes[0] // patch) * (sizes[1] // patch)
    P2 = (sizes[2] // patch) * (sizes[3] // patch)
    B = Hc.shape[0]
    out = PatchOverlap(
        overlap=np.empty(B, np.float32),
        valid=np.empty(B, np.bool_),
        forward=np.empty((B, P1), np.int32),
        backward=np.empty((B, P2), np.int32),
        correspondences=np.empty((B, P1), np.int32),
        counts=np.empty((B, 2), np.int32),
    )
    ptrs = tuple(a.ctypes.data for a in out)
    args = (Hc.ctypes.data, Hc.dtype == np.float64, B, sizes, patch, samples, seed, grid, ptrs)
    if device == "cpu":
        _native.native().patch_overlap_cpu(*args)
    else:
        _native.require_cuda()
        _native.native().patch_overlap_cuda_from_host(*args)
    if single:
        return PatchOverlap(*(a[0] for a in out))
    return out


def _check_sizes(image_size: Any, patch_size: Any) -> tuple[int, int, int, int]:
    _check_int("patch_size", patch_size, 1, 1 << 15)
    try:
        if len(image_size) == 2 and not any(hasattr(s, "__len__") for s in image_size):
            views = (tuple(image_size), tuple(image_size))
        else:
            views = tuple(tuple(v) for v in image_size)
            if len(views) != 2 or any(len(v) != 2 for v in views):
                raise TypeError
    except TypeError:
        raise ValueError(
            f"image_size must be (h, w) or ((h1, w1), (h2, w2)), got {image_size!r}"
        ) from None
    for name, (h, w) in zip(("view 1", "view 2"), views):
        for dim, v in (("h", h), ("w", w)):
            _check_int(f"image_size ({name} {dim})", v, 1, 1 << 20)
        if h < patch_size or w < patch_size:
            raise ValueError(
                f"image_size of {name} must be at least one patch ({patch_size}x{patch_size}), "
                f"got h={h}, w={w}"
            )
        patches = (h // patch_size) * (w // patch_size)
        if patches > _MAX_PATCHES:
            raise ValueError(
                f"image_size of {name} gives {patches} patches of {patch_size}px, more than the "
                f"{_MAX_PATCHES} supported; use a larger patch_size"
            )
    (h1, w1), (h2, w2) = views
    return int(h1), int(w1), int(h2), int(w2)


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")


def _is_torch_tensor(x: Any) -> bool:
    # Avoid importing torch for numpy callers.
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")
