"""Plain-torch definition of RoPE-2D attention: the twin the Triton kernel is tested against.

Written for clarity, not speed. ``attention_reference`` is the definition of what
``mimic_fast.kernels.attention`` computes.

RoPE-2D (CroCo v2, "RoPE-100"): a head's D channels are split into two halves; the first
half is rotated by the token's row (y) coordinate, the second by its column (x). Inside each
half, channel ``j`` is paired with channel ``j + D/4`` ("rotate-half" pairing) and the pair
is rotated by the angle ``pos * base ** (-2j / (D/2))`` for ``j`` in ``[0, D/4)``.
"""

from __future__ import annotations

import torch

from mimic_fast.kernels._validate import check_attention_args


def rope_inv_freq(head_dim: int, base: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Inverse frequencies ``base ** (-2j / (head_dim / 2))``, j in [0, head_dim/4). [head_dim/4]."""
    half = head_dim // 2
    exponents = torch.arange(0, half, 2, dtype=torch.float64, device=device) / half
    return (base ** (-exponents)).to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) along the last dimension."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _rope1d(x: torch.Tensor, pos: torch.Tensor, inv_freq: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, N, d] by integer positions pos [B, N] (rotate-half pairing)."""
    angles = pos.to(inv_freq.dtype)[:, None, :, None] * inv_freq  # [B, 1, N, d/2]
    angles = torch.cat((angles, angles), dim=-1)  # channel j and j + d/2 share a frequency
    return x * angles.cos() + _rotate_half(x) * angles.sin()


def rope2d_reference(x: torch.Tensor, pos: torch.Tensor, base: float = 100.0) -> torch.Tensor:
    """Apply RoPE-2D to x [B, H, N, D] at integer positions pos [B, N, 2] = (y, x).

    The computation runs in x's dtype with fp32 (or fp64 for fp64 x) angles, like CroCo v2.
    """
    if x.shape[-1] % 4 != 0:
        raise ValueError(f"RoPE-2D needs a head dim divisible by 4, got {x.shape[-1]}")
    angle_dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    inv_freq = rope_inv_freq(x.shape[-1], base, device=x.device, dtype=angle_dtype)
    y_half, x_half = x.chunk(2, dim=-1)
    y_half = _rope1d(y_half, pos[..., 0], inv_freq).to(x.dtype)
    x_half = _rope1d(x_half, pos[..., 1], inv_freq).to(x.dtype)
    return torch.cat((y_half, x_half), dim=-1)


def attention_reference(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    rope_base: float = 100.0,
    scale: float | None = None,
    upcast: bool = True,
) -> torch.Tensor:
    """softmax(rope(q) rope(k)^T * scale) v, the definition of ``kernels.attention``.

    Args:
        q: [B, H, Nq, D]; k, v: [B, H, Nk, D], same dtype and device.
        q_pos, k_pos: integer [B, Nq, 2] / [B, Nk, 2] (y, x) patch coordinates, both or
            neither. When given, RoPE-2D with ``rope_base`` is applied to q and k.
        scale: score scale, default ``D ** -0.5``.
        upcast: compute in fp32 (fp64 stays fp64) and cast the result back (the
            reference); False computes naively in the input dtype (used for error budgets).
    Returns:
        [B, H, Nq, D] in q's dtype.
    """
    check_attention_args(q, k, v, q_pos, k_pos, for_kernel=False)
    out_dtype = q.dtype
    if upcast and q.dtype in (torch.float16, torch.bfloat16):
        q, k, v = q.float(), k.float(), v.float()
    if q_pos is not None:
        q = rope2d_reference(q, q_pos, rope_base)
        k = rope2d_reference(k, k_pos, rope_base)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v).to(out_dtype)
