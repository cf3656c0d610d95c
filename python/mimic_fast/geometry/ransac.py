"""``mimic_fast.find_homographies``: RANSAC homographies for B pairs of matches in one call.

Argument checks and device dispatch live here; the numbers come from the native kernels
(csrc/ransac). The definition of every output is the numpy reference,
:func:`mimic_fast.geometry.reference_ransac.find_homographies_reference`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from mimic_fast import _native
from mimic_fast.geometry.result import Homographies

_MAX_MATCHES = (1 << 31) - 1  # match indices are int32 in the kernels
_MAX_ITERS = (1 << 30)  # the CUDA kernel counts hypotheses in int32, a warp's step past this


class RansacArgs(NamedTuple):
    """Checked arguments, as the kernels take them."""

    batch: int
    n: int
    threshold: float
    max_iters: int
    confidence: float
    seed: int


def find_homographies(
    src: Any,
    dst: Any,
    counts: Any = None,
    threshold: float = 5.0,
    max_iters: int = 2000,
    confidence: float = 0.995,
    seed: int = 0,
    device: Any = None,
) -> Homographies:
    """RANSAC homographies src -> dst for B pairs of padded matches, in one call.

    Per pair: minimal 4-point samples from a counter-based RNG keyed by (seed, iteration),
    OpenCV's degeneracy checks and inlier rule (reprojection error <= threshold, as
    ``cv2.findHomography(src, dst, cv2.RANSAC, threshold)``), OpenCV's adaptive iteration
    count from ``confidence``, then a refit on the inliers (normalised DLT and 10
    Levenberg-Marquardt steps, as OpenCV) and re-scoring. The exact rules:
    :mod:`mimic_fast.geometry.reference_ransac`. A pair's result depends on its own matches,
    count and the arguments only, never on its position in the batch; CPU and CUDA agree.

    Args:
        src, dst: [B, N, 2] float32/float64 pixel coordinates (x, y), numpy arrays or torch
            tensors (CPU or CUDA, both the same kind, dtype and device); pair b's matches are
            src[b, i] -> dst[b, i] for i < counts[b], the rest is padding (ignored).
        counts: [B] integers in [0, N], valid matches per pair; None means all N.
        threshold: inlier threshold in pixels (> 0).
        max_iters: iterations at most (>= 1).
        confidence: 0 < confidence < 1; the adaptive iteration count stops once an all-inlier
            sample has been drawn with this probability (OpenCV's formula).
        seed: sampling key, 0 <= seed < 2**64.
        device: None (where src lives), "cpu" or "cuda". "cuda" without a CUDA build or GPU
            raises RuntimeError; torch results come back on src's device.

    Returns:
        :class:`Homographies` (H [B, 3, 3] float64 with H[2, 2] = 1, inliers [B, N] bool,
        num_inliers [B] int32, valid [B] bool); numpy in, numpy out; torch in, torch out.
        Fewer than 4 matches, non-finite coordinates or no model with 4 inliers (collinear or
        repeated points) give valid=False, H = 0 and no inliers, never an exception.
    """
    args = check_ransac_arguments(src, dst, counts, threshold, max_iters, confidence, seed)
    if _is_torch_tensor(src):
        from mimic_fast.geometry.ransac_torch import find_homographies_torch

        return find_homographies_torch(src, dst, counts, args, device)
    return _find_homographies_numpy(src, dst, counts, args, device)


def pad_matches(matches: list[tuple[np.ndarray, np.ndarray]]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(src, dst [B, N, 2] float32 zero-padded, counts [B]) of B pairs of matched points
    (xy1 [M_b, 2], xy2 [M_b, 2]), as :func:`find_homographies` takes them."""
    n = max((len(xy1) for xy1, _ in matches), default=0)
    src = np.zeros((len(matches), n, 2), np.float32)
    dst = np.zeros_like(src)
    counts = np.array([len(xy1) for xy1, _ in matches], np.int64)
    for b, (xy1, xy2) in enumerate(matches):
        src[b, : len(xy1)], dst[b, : len(xy2)] = xy1, xy2
    return src, dst, counts


def check_ransac_arguments(src: Any, dst: Any, counts: Any, threshold: Any, max_iters: Any,
                           confidence: Any, seed: Any) -> RansacArgs:
    """The one check before the kernels (find_homographies and the torch custom op, reachable
    directly as torch.ops.mimic_fast.find_homographies, both call it): a ValueError naming the
    argument, what was expected and what came. The kernels trust what passes: a wrong shape
    or a count above N would read out of bounds."""
    for name, x in (("src", src), ("dst", dst)):
        if not (isinstance(x, np.ndarray) or _is_torch_tensor(x)):
            raise ValueError(f"{name} must be a numpy array or a torch tensor, got "
                             f"{type(x).__module__}.{type(x).__qualname__}")
        shape = tuple(x.shape)
        if len(shape) != 3 or shape[2] != 2:
            raise ValueError(f"{name} must have shape [B, N, 2], got {list(shape)}")
        dtype = _dtype_name(x)
        if dtype not in ("float32", "float64"):
            raise ValueError(f"{name} must be float32 or float64, got {dtype}")
    if type(src) is not type(dst):
        raise ValueError(f"src and dst must be both numpy arrays or both torch tensors, got "
                         f"{type(src).__qualname__} and {type(dst).__qualname__}")
    if tuple(src.shape) != tuple(dst.shape):
        raise ValueError(f"dst must have src's shape {list(src.shape)}, got {list(dst.shape)}")
    if _dtype_name(src) != _dtype_name(dst):
        raise ValueError(f"dst must have src's dtype {_dtype_name(src)}, got {_dtype_name(dst)}")
    if _is_torch_tensor(src) and src.device != dst.device:
        raise ValueError(f"dst must be on src's device {src.device}, got {dst.device}")
    B, N = int(src.shape[0]), int(src.shape[1])
    if N > _MAX_MATCHES:
        raise ValueError(f"src must have at most {_MAX_MATCHES} matches per pair, got N={N}")
    if counts is not None:
        _check_counts(counts, B, N)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)) \
            or not math.isfinite(float(threshold)) or not float(threshold) > 0:
        raise ValueError(f"threshold must be a finite number > 0, got {threshold!r}")
    _check_int("max_iters", max_iters, 1, _MAX_ITERS)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float, np.number)) \
            or not 0 < float(confidence) < 1:
        raise ValueError(f"confidence must be a number with 0 < confidence < 1, got "
                         f"{confidence!r}")
    _check_int("seed", seed, 0, (1 << 64) - 1)
    return RansacArgs(B, N, float(threshold), int(max_iters), float(confidence), int(seed))


def _check_counts(counts: Any, B: int, N: int) -> None:
    if _is_torch_tensor(counts):
        shape, dtype = tuple(counts.shape), _dtype_name(counts)
        integer = not (counts.is_floating_point() or counts.is_complex()) and dtype != "bool"
    else:
        counts = np.asarray(counts)
        shape, dtype = counts.shape, str(counts.dtype)
        integer = counts.dtype.kind in "iu"
    if shape != (B,):
        raise ValueError(f"counts must have shape [B] = [{B}], got {list(shape)}")
    if not integer:
        raise ValueError(f"counts must hold integers, got {dtype}")
    if B:
        lo, hi = int(counts.min()), int(counts.max())  # a device sync for CUDA tensors
        if lo < 0 or hi > N:
            raise ValueError(f"counts must be in [0, N] = [0, {N}], got values in [{lo}, {hi}]")


def _find_homographies_numpy(src: np.ndarray, dst: np.ndarray, counts: Any, args: RansacArgs,
                             device: Any) -> Homographies:
    device = "cpu" if device is None else str(device)
    if device not in ("cpu", "cuda"):
        raise ValueError(
            f"device must be None, 'cpu' or 'cuda' for numpy input (the current CUDA device; "
            f"pass torch tensors to pick another), got {device!r}"
        )
    src = np.ascontiguousarray(src)
    dst = np.ascontiguousarray(dst)
    B, N = args.batch, args.n
    cnt = np.full(B, N, np.int64) if counts is None else np.ascontiguousarray(counts, np.int64)
    out = Homographies(
        H=np.zeros((B, 3, 3), np.float64),
        inliers=np.zeros((B, N), np.bool_),
        num_inliers=np.zeros(B, np.int32),
        valid=np.zeros(B, np.bool_),
    )
    if B == 0:
        return out
    ptrs = tuple(a.ctypes.data for a in out)
    call = (src.ctypes.data, dst.ctypes.data, src.dtype == np.float64, cnt.ctypes.data, B, N,
            args.threshold, args.max_iters, args.confidence, args.seed, ptrs)
    if device == "cpu":
        _native.native().find_homographies_cpu(*call)
    else:
        _native.require_cuda()
        _native.native().find_homographies_cuda_from_host(*call)
    return out


def _check_int(name: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if not lo <= int(value) <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")


def _dtype_name(x: Any) -> str:
    return str(x.dtype).replace("torch.", "")


def _is_torch_tensor(x: Any) -> bool:
    # Avoid importing torch for numpy callers.
    return type(x).__module__.startswith("torch") and hasattr(x, "data_ptr")
