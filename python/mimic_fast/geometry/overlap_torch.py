"""The torch entry of patch_overlap: a ``torch.library.custom_op`` over the native kernels,
so torch.compile can trace through it and CUDA tensors stay on the device."""

from __future__ import annotations

import torch

from mimic_fast.geometry._torch_dispatch import run_kernel, signed_seed, target_device
from mimic_fast.geometry.overlap import check_homographies, check_parameters
from mimic_fast.geometry.result import PatchOverlap

_OutTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                    torch.Tensor]


def _empty_outputs(H: torch.Tensor, p1: int, p2: int) -> _OutTensors:
    B, dev = H.shape[0], H.device
    return (
        torch.empty(B, dtype=torch.float32, device=dev),
        torch.empty(B, dtype=torch.bool, device=dev),
        torch.empty(B, p1, dtype=torch.int32, device=dev),
        torch.empty(B, p2, dtype=torch.int32, device=dev),
        torch.empty(B, p1, dtype=torch.int32, device=dev),
        torch.empty(B, 2, dtype=torch.int32, device=dev),
    )


def _checked_patch_counts(h1: int, w1: int, h2: int, w2: int, patch: int, samples: int,
                          seed: int, grid: bool) -> tuple[int, int]:
    """(P1, P2) after the same argument checks as mimic_fast.patch_overlap (ValueError)."""
    check_parameters(((h1, w1), (h2, w2)), patch, samples, seed & ((1 << 64) - 1),
                     "grid" if grid else "random")
    return (h1 // patch) * (w1 // patch), (h2 // patch) * (w2 // patch)


# The seed travels as a signed int64 (custom ops have no uint64) and is unwrapped here.
@torch.library.custom_op("mimic_fast::patch_overlap", mutates_args=())
def _patch_overlap_op(
    H: torch.Tensor, h1: int, w1: int, h2: int, w2: int, patch: int, samples: int, seed: int,
    grid: bool,
) -> _OutTensors:
    # The op is reachable directly as torch.ops.mimic_fast.patch_overlap: never hand the
    # kernel a buffer it would read out of bounds.
    if H.dim() != 3 or tuple(H.shape[1:]) != (3, 3) or not H.is_contiguous():
        raise ValueError(f"H must be a contiguous [B, 3, 3] tensor, got {list(H.shape)}")
    if H.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"H must be float32 or float64, got {H.dtype}")
    if H.device.type not in ("cpu", "cuda"):  # any other pointer would go to the CPU kernel
        raise ValueError(f"H must be on a CPU or CUDA device, got {H.device}")
    p1, p2 = _checked_patch_counts(h1, w1, h2, w2, patch, samples, seed, grid)
    out = _empty_outputs(H, p1, p2)
    args = (H.data_ptr(), H.dtype == torch.float64, H.shape[0], (h1, w1, h2, w2), patch,
            samples, seed & ((1 << 64) - 1), grid, tuple(t.data_ptr() for t in out))
    run_kernel("patch_overlap", H, *args)
    return out


@_patch_overlap_op.register_fake
def _(H, h1, w1, h2, w2, patch, samples, seed, grid):
    return _empty_outputs(H, *_checked_patch_counts(h1, w1, h2, w2, patch, samples, seed, grid))


def patch_overlap_torch(H: torch.Tensor, params: tuple, device) -> PatchOverlap:
    check_homographies(H)
    sizes, patch, samples, seed, grid = params
    target = target_device(H, device)
    single = H.dim() == 2
    Hc = H.reshape(-1, 3, 3).to(target).contiguous()
    out = _patch_overlap_op(Hc, *sizes, patch, samples, signed_seed(seed), grid)
    out = tuple(t.to(H.device) for t in out)
    if single:
        out = tuple(t[0] for t in out)
    return PatchOverlap(*out)
