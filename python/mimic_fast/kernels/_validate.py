"""Argument checks shared by the Triton attention and its torch reference.

Every failure raises ValueError naming the argument, what was expected and what came.
"""

from __future__ import annotations

import torch

KERNEL_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
REFERENCE_DTYPES = KERNEL_DTYPES + (torch.float64,)
KERNEL_HEAD_DIMS = (32, 64, 128)


def _check_positions(name: str, pos: torch.Tensor, batch: int, tokens: int, device) -> None:
    if not isinstance(pos, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(pos).__name__}")
    if pos.dtype.is_floating_point or pos.dtype.is_complex or pos.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of (y, x) patch coordinates, got {pos.dtype}")
    if tuple(pos.shape) != (batch, tokens, 2):
        raise ValueError(f"{name} must have shape [B, N, 2] = [{batch}, {tokens}, 2], got {list(pos.shape)}")
    if pos.device != device:
        raise ValueError(f"{name} must be on the device of q ({device}), got {pos.device}")


def check_attention_args(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_pos: torch.Tensor | None,
    k_pos: torch.Tensor | None,
    for_kernel: bool,
) -> None:
    """Validate shapes, dtypes and devices of an attention call (see ``attention_reference``)."""
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape [B, H, N, D], got {list(t.shape)}")
    allowed = KERNEL_DTYPES if for_kernel else REFERENCE_DTYPES
    if q.dtype not in allowed:
        raise ValueError(f"q must have dtype in {[str(d) for d in allowed]}, got {q.dtype}")
    batch, heads, n_q, head_dim = q.shape
    n_k = k.shape[2]
    for name, t in (("k", k), ("v", v)):
        if t.dtype != q.dtype:
            raise ValueError(f"{name} must have the dtype of q ({q.dtype}), got {t.dtype}")
        if t.device != q.device:
            raise ValueError(f"{name} must be on the device of q ({q.device}), got {t.device}")
        expected = [batch, heads, n_k, head_dim]
        if list(t.shape) != expected:
            raise ValueError(f"{name} must have shape [B, H, Nk, D] = {expected}, got {list(t.shape)}")
    if n_k == 0 and batch * heads * n_q > 0:
        raise ValueError("k must hold at least one token (Nk >= 1): softmax over no keys is undefined")
    if (q_pos is None) != (k_pos is None):
        raise ValueError("q_pos and k_pos must be given together (RoPE-2D) or both be None, "
                         f"got q_pos={'None' if q_pos is None else 'tensor'}, "
                         f"k_pos={'None' if k_pos is None else 'tensor'}")
    if q_pos is not None:
        if head_dim % 4 != 0:
            raise ValueError(f"RoPE-2D needs a head dim D divisible by 4, got D={head_dim}")
        _check_positions("q_pos", q_pos, batch, n_q, q.device)
        _check_positions("k_pos", k_pos, batch, n_k, q.device)
    if for_kernel and head_dim not in KERNEL_HEAD_DIMS:
        raise ValueError(f"the Triton kernel needs a head dim D in {list(KERNEL_HEAD_DIMS)}, got D={head_dim}")
