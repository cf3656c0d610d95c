"""Forward kernel: flash-style attention with RoPE-2D applied to q and k tiles on load.

One program computes BLOCK_M query rows of one (batch, head): it rotates its q tile once,
then streams over key tiles (rotating each on load), keeping an online softmax in fp32
(base-2 exponent, scores pre-scaled by scale * log2(e)). It writes the output and the
row log-sum-exp (base 2) that the backward kernels need.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mimic_fast.kernels import _config
from mimic_fast.kernels._rope_tl import load_qk_tile, split_channels


@triton.jit
def _attn_fwd_kernel(
    Q, K, V, O, LSE, QPOS, KPOS,  # [B,H,Nq,D] [B,H,Nk,D] [B,H,Nk,D] [B,H,Nq,D] [B,H,Nq] [B,Nq,2] [B,Nk,2]
    stride_qb, stride_qh, stride_qn, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_ob, stride_oh, stride_on, stride_od,
    stride_qpb, stride_qpn, stride_qpc,
    stride_kpb, stride_kpn, stride_kpc,
    H, N_Q, N_K,
    qk_scale,  # softmax scale * log2(e)
    log2_base,  # log2(rope_base)
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    ROPE: tl.constexpr,
    DOT_FP32: tl.constexpr,  # feed tl.dot fp32 operands (interpreter: bf16 dot is wrong there)
    FAST_TRIG: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    num_m = tl.cdiv(N_Q, BLOCK_M)
    pid = tl.program_id(0)
    pid_m = pid % num_m
    pid_bh = pid // num_m
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)

    dot_ty = Q.dtype.element_ty
    if DOT_FP32:
        dot_ty = tl.float32

    t, ch_a, ch_b = split_channels(HEAD_DIM)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < N_Q

    q_a, q_b = load_qk_tile(Q + b * stride_qb + h * stride_qh, QPOS + b * stride_qpb, offs_m, mask_m,
                            stride_qn, stride_qd, stride_qpn, stride_qpc, t, ch_a, ch_b, log2_base,
                            HEAD_DIM, ROPE, FAST_TRIG)
    q_a = q_a.to(dot_ty)
    q_b = q_b.to(dot_ty)

    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    kpos_base = KPOS + b * stride_kpb

    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    for start_n in range(0, N_K, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N_K
        k_a, k_b = load_qk_tile(k_base, kpos_base, offs_n, mask_n, stride_kn, stride_kd,
                                stride_kpn, stride_kpc, t, ch_a, ch_b, log2_base,
                                HEAD_DIM, ROPE, FAST_TRIG)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                    mask=mask_n[:, None], other=0.0)

        s = tl.dot(q_a, tl.trans(k_a.to(dot_ty)), input_precision=INPUT_PRECISION)
        s = tl.dot(q_b, tl.trans(k_b.to(dot_ty)), s, input_precision=INPUT_PRECISION)
        s = tl.where(mask_n[None, :], s * qk_scale, float("-inf"))

        # The first tile always holds key 0, so m_new is finite from the first step on.
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp2(m_i - m_new)
        p = tl.exp2(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        acc = acc * alpha[:, None]
        acc = tl.dot(p.to(dot_ty), v.to(dot_ty), acc, input_precision=INPUT_PRECISION)
        m_i = m_new

    acc = acc / l_i[:, None]
    o_ptrs = O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_on + offs_d[None, :] * stride_od
    tl.store(o_ptrs, acc.to(O.dtype.element_ty), mask=mask_m[:, None])
    tl.store(LSE + pid_bh.to(tl.int64) * N_Q + offs_m, m_i + tl.log2(l_i), mask=mask_m)


def _pos_args(pos: torch.Tensor | None, dummy: torch.Tensor):
    """Pointer and strides of a positions tensor, or a never-read dummy when RoPE is off."""
    if pos is None:
        return dummy, (0, 0, 0)
    return pos, tuple(pos.stride())


def attention_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_pos: torch.Tensor | None,
    k_pos: torch.Tensor | None,
    rope_base: float,
    scale: float,
    config: _config.BlockConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Launch the forward kernel. Returns o [B, H, Nq, D] (memory laid out as [B, Nq, H, D],
    so ``o.transpose(1, 2).reshape(B, Nq, H * D)`` is free) and lse [B, H, Nq] fp32 (base 2)."""
    batch, heads, n_q, head_dim = q.shape
    n_k = k.shape[2]
    o = torch.empty((batch, n_q, heads, head_dim), dtype=q.dtype, device=q.device).transpose(1, 2)
    lse = torch.empty((batch, heads, n_q), dtype=torch.float32, device=q.device)
    if o.numel() == 0:
        return o, lse
    interpreted = _config.is_interpreted(_attn_fwd_kernel)
    cfg = config or _config.forward_config(n_q, n_k, head_dim, interpreted)
    qpos, qpos_strides = _pos_args(q_pos, lse)
    kpos, kpos_strides = _pos_args(k_pos, lse)
    grid = (triton.cdiv(n_q, cfg.block_m) * batch * heads,)
    _attn_fwd_kernel[grid](
        q, k, v, o, lse, qpos, kpos,
        *q.stride(), *k.stride(), *v.stride(), *o.stride(),
        *qpos_strides, *kpos_strides,
        heads, n_q, n_k,
        scale * _config.LOG2E, _config.log2_base(rope_base),
        HEAD_DIM=head_dim,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        ROPE=q_pos is not None,
        DOT_FP32=interpreted or q.dtype == torch.float32,
        FAST_TRIG=not interpreted,
        INPUT_PRECISION=_config.dot_input_precision(q.dtype),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return o, lse
