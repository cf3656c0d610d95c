"""The torch entry of find_homographies: a ``torch.library.custom_op`` over the native
kernels, so torch.compile can trace through it and CUDA tensors stay on the device."""

from __future__ import annotations

import torch

from mimic_fast.geometry._torch_dispatch import run_kernel, signed_seed, target_device
from mimic_fast.geometry.ransac import RansacArgs, check_ransac_arguments
from mimic_fast.geometry.result import Homographies

_OutTensors = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _empty_outputs(src: torch.Tensor) -> _OutTensors:
    B, N, dev = src.shape[0], src.shape[1], src.device
    return (
        torch.zeros(B, 3, 3, dtype=torch.float64, device=dev),
        torch.zeros(B, N, dtype=torch.bool, device=dev),
        torch.zeros(B, dtype=torch.int32, device=dev),
        torch.zeros(B, dtype=torch.bool, device=dev),
    )


# The seed travels as a signed int64 (custom ops have no uint64) and is unwrapped here.
@torch.library.custom_op("mimic_fast::find_homographies", mutates_args=())
def _find_homographies_op(
    src: torch.Tensor, dst: torch.Tensor, counts: torch.Tensor, threshold: float,
    max_iters: int, confidence: float, seed: int,
) -> _OutTensors:
    # The op is reachable directly as torch.ops.mimic_fast.find_homographies: the same checks
    # as find_homographies, and never a buffer the kernel would read out of bounds.
    args = check_ransac_arguments(src, dst, counts, threshold, max_iters, confidence,
                                  seed & ((1 << 64) - 1))
    for name, t in (("src", src), ("dst", dst), ("counts", counts)):
        if not t.is_contiguous():
            raise ValueError(f"{name} must be contiguous, got strides {list(t.stride())}")
        if t.device != src.device:
            raise ValueError(f"{name} must be on src's device {src.device}, got {t.device}")
    if counts.dtype != torch.int64:
        raise ValueError(f"counts must be int64, got {counts.dtype}")
    if src.device.type not in ("cpu", "cuda"):  # any other pointer would go to the CPU kernel
        raise ValueError(f"src must be on a CPU or CUDA device, got {src.device}")
    out = _empty_outputs(src)
    if args.batch == 0:
        return out
    call = (src.data_ptr(), dst.data_ptr(), src.dtype == torch.float64, counts.data_ptr(),
            args.batch, args.n, args.threshold, args.max_iters, args.confidence, args.seed,
            tuple(t.data_ptr() for t in out))
    run_kernel("find_homographies", src, *call)
    return out


@_find_homographies_op.register_fake
def _(src, dst, counts, threshold, max_iters, confidence, seed):
    return _empty_outputs(src)


def find_homographies_torch(src: torch.Tensor, dst: torch.Tensor, counts, args: RansacArgs,
                            device) -> Homographies:
    target = target_device(src, device)
    if counts is None:
        cnt = torch.full((args.batch,), args.n, dtype=torch.int64, device=target)
    else:
        cnt = torch.as_tensor(counts).to(device=target, dtype=torch.int64).contiguous()
    s = src.to(target).contiguous()
    d = dst.to(target).contiguous()
    out = _find_homographies_op(s, d, cnt, args.threshold, args.max_iters, args.confidence,
                                signed_seed(args.seed))
    return Homographies(*(t.to(src.device) for t in out))
