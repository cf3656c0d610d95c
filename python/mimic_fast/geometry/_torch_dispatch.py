"""What the torch entry points of the native ops share: where the work runs, how the kernel
of that device is called, and the seed as torch.library's int64 carries it."""

from __future__ import annotations

import torch

from mimic_fast import _native


def target_device(tensor: torch.Tensor, device) -> torch.device:
    """The device an op runs on: ``device``, or the input's own ("cuda" means the input's
    own GPU when it is on one already); CUDA only where it was built and is visible."""
    target = tensor.device if device is None else torch.device(device)
    if target.type == tensor.device.type and target.index is None:
        target = tensor.device
    if target.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be None, 'cpu' or 'cuda', got {device!r}")
    if target.type == "cuda":
        _native.require_cuda()
    return target


def run_kernel(name: str, tensor: torch.Tensor, *args) -> None:
    """``_C.<name>_cuda(*args, stream)`` on the current stream of ``tensor``'s GPU, or
    ``_C.<name>_cpu(*args)``."""
    if tensor.device.type == "cuda":
        with torch.cuda.device(tensor.device):
            stream = torch.cuda.current_stream(tensor.device).cuda_stream
            getattr(_native.native(), f"{name}_cuda")(*args, stream)
    else:
        getattr(_native.native(), f"{name}_cpu")(*args)


def signed_seed(seed: int) -> int:
    """A seed in [0, 2**64) as the int64 torch.library passes (the kernels read it back)."""
    return seed - (1 << 64) if seed >= (1 << 63) else seed
