"""Triton building blocks for RoPE-2D inside the attention kernels.

Channel split. RoPE-2D rotates channel pairs (c, c + D/4) inside each half of a head
(see ``reference.py``). The kernels therefore load q and k as two tiles of D/2 channels:

    a = channels of quarters 0 and 2 (first member of each pair)   [BLOCK, D/2]
    b = channels of quarters 1 and 3 (its rotation partner)        [BLOCK, D/2]

so the rotation is purely element-wise (a' = a cos - b sin, b' = b cos + a sin), each
distinct angle gets one sin/cos, and q.k = a_q.a_k + b_q.b_k is two tl.dot calls with
K = D/2. Gradients come back in the same split and are un-rotated element-wise, so no
in-register permutation is ever needed. Column t of a tile maps to channel
``(t // (D/4)) * (D/2) + t % (D/4)`` (+ D/4 for b); t < D/4 is the y half, t >= D/4 the x half.
"""

import triton
import triton.language as tl
from triton.language.extra import libdevice


@triton.jit
def split_channels(HEAD_DIM: tl.constexpr):
    """Column index t in [0, D/2) and the channel offsets of the a and b tiles."""
    HALF: tl.constexpr = HEAD_DIM // 2
    QUARTER: tl.constexpr = HEAD_DIM // 4
    t = tl.arange(0, HALF)
    ch_a = (t // QUARTER) * HALF + (t % QUARTER)
    return t, ch_a, ch_a + QUARTER


@triton.jit
def load_split(base, offs_n, mask_n, stride_n, stride_d, ch_a, ch_b):
    """Load rows offs_n of a [N, D] matrix as its a and b tiles ([BLOCK, D/2] each)."""
    rows = base + offs_n[:, None] * stride_n
    a = tl.load(rows + ch_a[None, :] * stride_d, mask=mask_n[:, None], other=0.0)
    b = tl.load(rows + ch_b[None, :] * stride_d, mask=mask_n[:, None], other=0.0)
    return a, b


@triton.jit
def store_split(base, offs_n, mask_n, stride_n, stride_d, ch_a, ch_b, a, b):
    """Store a and b tiles back to rows offs_n of a [N, D] matrix (cast to its dtype)."""
    rows = base + offs_n[:, None] * stride_n
    tl.store(rows + ch_a[None, :] * stride_d, a.to(base.dtype.element_ty), mask=mask_n[:, None])
    tl.store(rows + ch_b[None, :] * stride_d, b.to(base.dtype.element_ty), mask=mask_n[:, None])


@triton.jit
def rope_cos_sin(pos_base, offs_n, mask_n, stride_pn, stride_pc, t, log2_base,
                 HEAD_DIM: tl.constexpr, FAST_TRIG: tl.constexpr):
    """cos and sin [BLOCK, D/2] (fp32) of the RoPE-2D angles of tokens offs_n.

    pos_base points at this batch element's [N, 2] (y, x) integer positions.
    """
    QUARTER: tl.constexpr = HEAD_DIM // 4
    j = (t % QUARTER).to(tl.float32)
    inv_freq = tl.exp2(j * (-4.0 / HEAD_DIM) * log2_base)  # base ** (-2j / (D/2))
    pos_y = tl.load(pos_base + offs_n * stride_pn, mask=mask_n, other=0).to(tl.float32)
    pos_x = tl.load(pos_base + offs_n * stride_pn + stride_pc, mask=mask_n, other=0).to(tl.float32)
    pos = tl.where((t >= QUARTER)[None, :], pos_x[:, None], pos_y[:, None])
    angle = pos * inv_freq[None, :]
    if FAST_TRIG:
        # sin.approx/cos.approx (MUFU): abs error ~1e-6 for |angle| < 100 pi, far below bf16.
        cos = libdevice.fast_cosf(angle)
        sin = libdevice.fast_sinf(angle)
    else:
        cos = tl.cos(angle)
        sin = tl.sin(angle)
    return cos, sin


@triton.jit
def rotate(a, b, cos, sin):
    """Forward rotation of each (a, b) pair by its angle (rotate-half convention)."""
    return a * cos - b * sin, b * cos + a * sin


@triton.jit
def rotate_back(a, b, cos, sin):
    """Inverse (transposed) rotation: maps gradients w.r.t. rotated q/k to q/k."""
    return a * cos + b * sin, b * cos - a * sin


@triton.jit
def load_qk_tile(base, pos_base, offs_n, mask_n, stride_n, stride_d, stride_pn, stride_pc,
                 t, ch_a, ch_b, log2_base,
                 HEAD_DIM: tl.constexpr, ROPE: tl.constexpr, FAST_TRIG: tl.constexpr):
    """Load a q or k tile as (a, b) in fp32, rotated by RoPE-2D when ROPE."""
    a, b = load_split(base, offs_n, mask_n, stride_n, stride_d, ch_a, ch_b)
    a = a.to(tl.float32)
    b = b.to(tl.float32)
    if ROPE:
        cos, sin = rope_cos_sin(pos_base, offs_n, mask_n, stride_pn, stride_pc, t, log2_base,
                                HEAD_DIM, FAST_TRIG)
        a, b = rotate(a, b, cos, sin)
    return a, b
