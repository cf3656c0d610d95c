"""Public entry point of the fused RoPE-2D attention: validation, custom ops and autograd.

The forward and backward launches are registered as ``torch.library`` custom ops
(``mimic_fast::rope_attention_fwd`` / ``_bwd``) with fake implementations, so
``torch.compile`` treats them as opaque nodes instead of breaking the graph.
"""

from __future__ import annotations

from typing import Optional

import torch

from mimic_fast.kernels import _config
from mimic_fast.kernels._bwd import _grad_like, attention_backward
from mimic_fast.kernels._config import BlockConfig
from mimic_fast.kernels._fwd import _attn_fwd_kernel, attention_forward
from mimic_fast.kernels._validate import check_attention_args


def interpreted() -> bool:
    """True when the kernels run under the Triton interpreter (TRITON_INTERPRET=1 at import)."""
    return _config.is_interpreted(_attn_fwd_kernel)


def _config_from_ints(block_m: int, block_n: int, num_warps: int, num_stages: int) -> BlockConfig | None:
    return BlockConfig(block_m, block_n, num_warps, num_stages) if block_m else None


@torch.library.custom_op("mimic_fast::rope_attention_fwd", mutates_args=())
def _fwd_op(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    q_pos: Optional[torch.Tensor], k_pos: Optional[torch.Tensor],
    rope_base: float, scale: float,
    block_m: int, block_n: int, num_warps: int, num_stages: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    cfg = _config_from_ints(block_m, block_n, num_warps, num_stages)
    return attention_forward(q, k, v, q_pos, k_pos, rope_base, scale, cfg)


@_fwd_op.register_fake
def _fwd_fake(q, k, v, q_pos, k_pos, rope_base, scale, block_m, block_n, num_warps, num_stages):
    batch, heads, n_q, head_dim = q.shape
    o = q.new_empty((batch, n_q, heads, head_dim)).transpose(1, 2)
    return o, q.new_empty((batch, heads, n_q), dtype=torch.float32)


@torch.library.custom_op("mimic_fast::rope_attention_bwd", mutates_args=())
def _bwd_op(
    do: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    o: torch.Tensor, lse: torch.Tensor,
    q_pos: Optional[torch.Tensor], k_pos: Optional[torch.Tensor],
    rope_base: float, scale: float,
    block_m: int, block_n: int, num_warps: int, num_stages: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    cfg = _config_from_ints(block_m, block_n, num_warps, num_stages)
    return attention_backward(do, q, k, v, o, lse, q_pos, k_pos, rope_base, scale, cfg)


@_bwd_op.register_fake
def _bwd_fake(do, q, k, v, o, lse, q_pos, k_pos, rope_base, scale, block_m, block_n, num_warps, num_stages):
    return _grad_like(q), _grad_like(k), _grad_like(v)


def _setup_context(ctx, inputs, output) -> None:
    q, k, v, q_pos, k_pos, rope_base, scale, *launch = inputs
    o, lse = output
    ctx.save_for_backward(q, k, v, o, lse, q_pos, k_pos)
    ctx.rope_base = rope_base
    ctx.scale = scale
    ctx.launch = launch
    ctx.mark_non_differentiable(lse)


def _backward(ctx, do, _dlse):
    q, k, v, o, lse, q_pos, k_pos = ctx.saved_tensors
    dq, dk, dv = _bwd_op(do, q, k, v, o, lse, q_pos, k_pos, ctx.rope_base, ctx.scale, *ctx.launch)
    return (dq, dk, dv) + (None,) * 8


_fwd_op.register_autograd(_backward, setup_context=_setup_context)


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_pos: torch.Tensor | None = None,
    k_pos: torch.Tensor | None = None,
    rope_base: float = 100.0,
    *,
    scale: float | None = None,
    config: BlockConfig | None = None,
) -> torch.Tensor:
    """Fused softmax(rope(q) rope(k)^T * scale) v on the GPU (Triton), differentiable.

    Args:
        q: [B, H, Nq, D]; k, v: [B, H, Nk, D]; float16, bfloat16 or float32 (fp32
            accumulation), D in {32, 64, 128}, any Nq and Nk >= 1, any strides.
        q_pos, k_pos: integer [B, Nq, 2] / [B, Nk, 2] (y, x) patch coordinates, both or
            neither; when given RoPE-2D (CroCo v2 RoPE-``rope_base``) is applied to q and k
            inside the kernel.
        scale: score scale, default ``D ** -0.5``.
        config: block sizes for both forward and backward (default: heuristics).
    Returns:
        [B, H, Nq, D] in q's dtype, laid out in memory as [B, Nq, H, D].

    ``attention_reference`` is the definition. The tensors must be on a CUDA device, unless
    the kernels run under the Triton interpreter (TRITON_INTERPRET=1 set before import).
    """
    check_attention_args(q, k, v, q_pos, k_pos, for_kernel=True)
    if q.device.type != "cuda" and not interpreted():
        raise ValueError(
            f"q must be a CUDA tensor for the Triton attention kernel, got device {q.device}; "
            "use mimic_fast.kernels.attention_reference on CPU, or set TRITON_INTERPRET=1 "
            "before importing mimic_fast.kernels to run the kernel in the interpreter")
    _config.log2_base(rope_base)  # validates rope_base
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    launch = (config.block_m, config.block_n, config.num_warps, config.num_stages) if config else (0, 0, 0, 0)
    o, _ = _fwd_op(q, k, v, q_pos, k_pos, float(rope_base), scale, *launch)
    return o
