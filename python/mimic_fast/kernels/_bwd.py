"""Backward kernels of the RoPE-2D flash attention (FlashAttention-2 recomputation scheme).

Three launches:
  1. ``_bwd_preprocess``: delta = rowsum(dO * O) [B, H, Nq] in fp32.
  2. ``_bwd_dkdv``: one program per key tile; streams over query tiles, recomputes the
     probabilities from the saved log-sum-exp and accumulates dV and dK (w.r.t. the
     rotated keys), then un-rotates dK element-wise before storing it.
  3. ``_bwd_dq``: one program per query tile; streams over key tiles and accumulates dQ the
     same way. Separate from (2) so no atomics are needed and the result is deterministic.
q and k are rotated on load exactly as in the forward, so the recomputed scores match.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from mimic_fast.kernels import _config
from mimic_fast.kernels._fwd import _pos_args
from mimic_fast.kernels._rope_tl import (
    load_qk_tile,
    rope_cos_sin,
    rotate_back,
    split_channels,
    store_split,
)


@triton.jit
def _bwd_preprocess(
    O, DO, DELTA,  # [B,H,Nq,D] [B,H,Nq,D] [B,H,Nq]
    stride_ob, stride_oh, stride_on, stride_od,
    stride_dob, stride_doh, stride_don, stride_dod,
    H, N_Q,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
):
    num_m = tl.cdiv(N_Q, BLOCK_M)
    pid = tl.program_id(0)
    pid_m = pid % num_m
    pid_bh = pid // num_m
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    mask_m = offs_m < N_Q
    o = tl.load(O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_on + offs_d[None, :] * stride_od,
                mask=mask_m[:, None], other=0.0).to(tl.float32)
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod,
                 mask=mask_m[:, None], other=0.0).to(tl.float32)
    tl.store(DELTA + pid_bh.to(tl.int64) * N_Q + offs_m, tl.sum(o * do, axis=1), mask=mask_m)


@triton.jit
def _bwd_dkdv(
    Q, K, V, DO, LSE, DELTA, DK, DV, QPOS, KPOS,
    stride_qb, stride_qh, stride_qn, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_don, stride_dod,
    stride_dkb, stride_dkh, stride_dkn, stride_dkd,
    stride_dvb, stride_dvh, stride_dvn, stride_dvd,
    stride_qpb, stride_qpn, stride_qpc,
    stride_kpb, stride_kpn, stride_kpc,
    H, N_Q, N_K,
    sm_scale, qk_scale, log2_base,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    ROPE: tl.constexpr,
    DOT_FP32: tl.constexpr,
    FAST_TRIG: tl.constexpr,
    INPUT_PRECISION: tl.constexpr,
):
    num_n = tl.cdiv(N_K, BLOCK_N)
    pid = tl.program_id(0)
    pid_n = pid % num_n
    pid_bh = pid // num_n
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)

    dot_ty = Q.dtype.element_ty
    if DOT_FP32:
        dot_ty = tl.float32

    t, ch_a, ch_b = split_channels(HEAD_DIM)
    offs_d = tl.arange(0, HEAD_DIM)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N_K

    kpos_base = KPOS + b * stride_kpb
    k_a, k_b = load_qk_tile(K + b * stride_kb + h * stride_kh, kpos_base, offs_n, mask_n,
                            stride_kn, stride_kd, stride_kpn, stride_kpc, t, ch_a, ch_b, log2_base,
                            HEAD_DIM, ROPE, FAST_TRIG)
    k_a = k_a.to(dot_ty)
    k_b = k_b.to(dot_ty)
    v = tl.load(V + b * stride_vb + h * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                mask=mask_n[:, None], other=0.0).to(dot_ty)

    q_base = Q + b * stride_qb + h * stride_qh
    do_base = DO + b * stride_dob + h * stride_doh
    qpos_base = QPOS + b * stride_qpb
    row_base = pid_bh.to(tl.int64) * N_Q

    dk_a = tl.zeros([BLOCK_N, HEAD_DIM // 2], dtype=tl.float32)
    dk_b = tl.zeros([BLOCK_N, HEAD_DIM // 2], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
    for start_m in range(0, N_Q, BLOCK_M):
        offs_m = start_m + tl.arange(0, BLOCK_M)
        mask_m = offs_m < N_Q
        q_a, q_b = load_qk_tile(q_base, qpos_base, offs_m, mask_m, stride_qn, stride_qd,
                                stride_qpn, stride_qpc, t, ch_a, ch_b, log2_base,
                                HEAD_DIM, ROPE, FAST_TRIG)
        q_a = q_a.to(dot_ty)
        q_b = q_b.to(dot_ty)
        do = tl.load(do_base + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod,
                     mask=mask_m[:, None], other=0.0).to(dot_ty)
        lse = tl.load(LSE + row_base + offs_m, mask=mask_m, other=0.0)
        delta = tl.load(DELTA + row_base + offs_m, mask=mask_m, other=0.0)

        # Transposed scores and probabilities: [BLOCK_N, BLOCK_M].
        s_t = tl.dot(k_a, tl.trans(q_a), input_precision=INPUT_PRECISION)
        s_t = tl.dot(k_b, tl.trans(q_b), s_t, input_precision=INPUT_PRECISION)
        p_t = tl.exp2(s_t * qk_scale - lse[None, :])
        p_t = tl.where(mask_m[None, :], p_t, 0.0)

        dv = tl.dot(p_t.to(dot_ty), do, dv, input_precision=INPUT_PRECISION)
        dp_t = tl.dot(v, tl.trans(do), input_precision=INPUT_PRECISION)
        ds_t = (p_t * (dp_t - delta[None, :])).to(dot_ty)
        dk_a = tl.dot(ds_t, q_a, dk_a, input_precision=INPUT_PRECISION)
        dk_b = tl.dot(ds_t, q_b, dk_b, input_precision=INPUT_PRECISION)

    dk_a = dk_a * sm_scale
    dk_b = dk_b * sm_scale
    if ROPE:
        cos, sin = rope_cos_sin(kpos_base, offs_n, mask_n, stride_kpn, stride_kpc, t, log2_base,
                                HEAD_DIM, FAST_TRIG)
        dk_a, dk_b = rotate_back(dk_a, dk_b, cos, sin)
    store_split(DK + b * stride_dkb + h * stride_dkh, offs_n, mask_n, stride_dkn, stride_dkd,
                ch_a, ch_b, dk_a, dk_b)
    tl.store(DV + b * stride_dvb + h * stride_dvh + offs_n[:, None] * stride_dvn + offs_d[None, :] * stride_dvd,
             dv.to(DV.dtype.element_ty), mask=mask_n[:, None])


@triton.jit
def _bwd_dq(
    Q, K, V, DO, LSE, DELTA, DQ, QPOS, KPOS,
    stride_qb, stride_qh, stride_qn, stride_qd,
    stride_kb, stride_kh, stride_kn, stride_kd,
    stride_vb, stride_vh, stride_vn, stride_vd,
    stride_dob, stride_doh, stride_don, stride_dod,
    stride_dqb, stride_dqh, stride_dqn, stride_dqd,
    stride_qpb, stride_qpn, stride_qpc,
    stride_kpb, stride_kpn, stride_kpc,
    H, N_Q, N_K,
    sm_scale, qk_scale, log2_base,
    HEAD_DIM: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    ROPE: tl.constexpr,
    DOT_FP32: tl.constexpr,
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

    qpos_base = QPOS + b * stride_qpb
    q_a, q_b = load_qk_tile(Q + b * stride_qb + h * stride_qh, qpos_base, offs_m, mask_m,
                            stride_qn, stride_qd, stride_qpn, stride_qpc, t, ch_a, ch_b, log2_base,
                            HEAD_DIM, ROPE, FAST_TRIG)
    q_a = q_a.to(dot_ty)
    q_b = q_b.to(dot_ty)
    do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_don + offs_d[None, :] * stride_dod,
                 mask=mask_m[:, None], other=0.0).to(dot_ty)
    row_base = pid_bh.to(tl.int64) * N_Q
    lse = tl.load(LSE + row_base + offs_m, mask=mask_m, other=0.0)
    delta = tl.load(DELTA + row_base + offs_m, mask=mask_m, other=0.0)

    k_base = K + b * stride_kb + h * stride_kh
    v_base = V + b * stride_vb + h * stride_vh
    kpos_base = KPOS + b * stride_kpb

    dq_a = tl.zeros([BLOCK_M, HEAD_DIM // 2], dtype=tl.float32)
    dq_b = tl.zeros([BLOCK_M, HEAD_DIM // 2], dtype=tl.float32)
    for start_n in range(0, N_K, BLOCK_N):
        offs_n = start_n + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N_K
        k_a, k_b = load_qk_tile(k_base, kpos_base, offs_n, mask_n, stride_kn, stride_kd,
                                stride_kpn, stride_kpc, t, ch_a, ch_b, log2_base,
                                HEAD_DIM, ROPE, FAST_TRIG)
        k_a = k_a.to(dot_ty)
        k_b = k_b.to(dot_ty)
        v = tl.load(v_base + offs_n[:, None] * stride_vn + offs_d[None, :] * stride_vd,
                    mask=mask_n[:, None], other=0.0).to(dot_ty)

        s = tl.dot(q_a, tl.trans(k_a), input_precision=INPUT_PRECISION)
        s = tl.dot(q_b, tl.trans(k_b), s, input_precision=INPUT_PRECISION)
        p = tl.exp2(s * qk_scale - lse[:, None])
        p = tl.where(mask_n[None, :], p, 0.0)
        dp = tl.dot(do, tl.trans(v), input_precision=INPUT_PRECISION)
        ds = (p * (dp - delta[:, None])).to(dot_ty)
        dq_a = tl.dot(ds, k_a, dq_a, input_precision=INPUT_PRECISION)
        dq_b = tl.dot(ds, k_b, dq_b, input_precision=INPUT_PRECISION)

    dq_a = dq_a * sm_scale
    dq_b = dq_b * sm_scale
    if ROPE:
        cos, sin = rope_cos_sin(qpos_base, offs_m, mask_m, stride_qpn, stride_qpc, t, log2_base,
                                HEAD_DIM, FAST_TRIG)
        dq_a, dq_b = rotate_back(dq_a, dq_b, cos, sin)
    store_split(DQ + b * stride_dqb + h * stride_dqh, offs_m, mask_m, stride_dqn, stride_dqd,
                ch_a, ch_b, dq_a, dq_b)


def _grad_like(x: torch.Tensor) -> torch.Tensor:
    """Empty [B, H, N, D] gradient laid out as [B, N, H, D] (matches a head-split projection)."""
    batch, heads, n, head_dim = x.shape
    return torch.empty((batch, n, heads, head_dim), dtype=x.dtype, device=x.device).transpose(1, 2)


def attention_backward(
    do: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    o: torch.Tensor,
    lse: torch.Tensor,
    q_pos: torch.Tensor | None,
    k_pos: torch.Tensor | None,
    rope_base: float,
    scale: float,
    config: _config.BlockConfig | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) of ``attention_forward`` given the output gradient ``do``."""
    batch, heads, n_q, head_dim = q.shape
    n_k = k.shape[2]
    dq, dk, dv = _grad_like(q), _grad_like(k), _grad_like(v)
    if batch * heads == 0 or n_k == 0:
        return dq, dk, dv
    if n_q == 0:  # no queries: nothing flows to k and v
        return dq, dk.zero_(), dv.zero_()
    interpreted = _config.is_interpreted(_bwd_dq)
    cfg = config or _config.backward_config(n_q, n_k, head_dim, interpreted)
    delta = torch.empty((batch, heads, n_q), dtype=torch.float32, device=q.device)
    _bwd_preprocess[(triton.cdiv(n_q, cfg.block_m) * batch * heads,)](
        o, do, delta, *o.stride(), *do.stride(), heads, n_q,
        HEAD_DIM=head_dim, BLOCK_M=cfg.block_m, num_warps=4,
    )
    qpos, qpos_strides = _pos_args(q_pos, lse)
    kpos, kpos_strides = _pos_args(k_pos, lse)
    common = dict(
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
    scalars = (heads, n_q, n_k, scale, scale * _config.LOG2E, _config.log2_base(rope_base))
    _bwd_dkdv[(triton.cdiv(n_k, cfg.block_n) * batch * heads,)](
        q, k, v, do, lse, delta, dk, dv, qpos, kpos,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dk.stride(), *dv.stride(),
        *qpos_strides, *kpos_strides, *scalars, **common,
    )
    _bwd_dq[(triton.cdiv(n_q, cfg.block_m) * batch * heads,)](
        q, k, v, do, lse, delta, dq, qpos, kpos,
        *q.stride(), *k.stride(), *v.stride(), *do.stride(), *dq.stride(),
        *qpos_strides, *kpos_strides, *scalars, **common,
    )
    return dq, dk, dv
