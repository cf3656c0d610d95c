"""Forward FLOP counts (2 * multiply-adds of matmuls and convolutions; norms, softmax and
element-wise ops are ignored) for MFU accounting. fwd + bwd is about 3x the forward."""

from __future__ import annotations

from mimic_fast.models.config import ModelConfig


def linear(tokens: int, d_in: int, d_out: int) -> int:
    return 2 * tokens * d_in * d_out


def attention_core(n_q: int, n_k: int, dim: int) -> int:
    """q k^T and p v over all heads."""
    return 2 * 2 * n_q * n_k * dim


def block(n: int, dim: int, mlp_ratio: float) -> int:
    """Self-attention block: qkv, scores, proj, 2-layer MLP."""
    hidden = int(dim * mlp_ratio)
    return (linear(n, dim, 3 * dim) + attention_core(n, n, dim) + linear(n, dim, dim)
            + linear(n, dim, hidden) + linear(n, hidden, dim))


def cross_block(n: int, n_mem: int, dim: int, mlp_ratio: float) -> int:
    """CroCo decoder block: a self-attention block plus cross-attention to n_mem tokens."""
    cross = (linear(n, dim, dim) + linear(n_mem, dim, 2 * dim) + attention_core(n, n_mem, dim)
             + linear(n, dim, dim))
    return block(n, dim, mlp_ratio) + cross


def forward_flops(cfg: ModelConfig) -> int:
    n, n_vis, c, d = cfg.num_patches, cfg.num_visible, cfg.enc_dim, cfg.dec_dim
    pix = cfg.patch_size ** 2 * 3
    head = linear(n, d, pix)
    if cfg.arch == "croco":
        # Both views are patch-embedded whole; the masked view then keeps n_vis tokens.
        embed = 2 * linear(n, pix, c)
        enc = cfg.enc_depth * (block(n_vis, c, cfg.mlp_ratio) + block(n, c, cfg.mlp_ratio))
        dec = linear(n_vis + n, c, d) + cfg.dec_depth * cross_block(n, n, d, cfg.mlp_ratio)
    else:
        embed = linear(n, pix, c)
        enc = cfg.enc_depth * block(n_vis + 1, c, cfg.mlp_ratio)
        dec = linear(n_vis + 1, c, d) + cfg.dec_depth * block(n + 1, d, cfg.mlp_ratio)
    return int(embed + enc + dec + head)
