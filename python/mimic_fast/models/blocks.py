"""ViT building blocks (pre-norm), parameter names matching timm's VisionTransformer.

timm cannot be imported on the CPU machines, so these are our own; ``timm_export`` maps them
onto timm's layout and a GPU-machine test checks that the outputs agree.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from mimic_fast.models.attn_backend import AttentionBackend

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class PatchEmbed(nn.Module):
    """[B, 3, H, W] -> [B, N, dim] by a p x p stride-p convolution (raster order)."""

    def __init__(self, img_size: int, patch_size: int, dim: int, in_chans: int = 3):
        super().__init__()
        self.img_size = img_size
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        if imgs.dim() != 4 or imgs.shape[1] != self.proj.in_channels or imgs.shape[-2:] != (self.img_size,) * 2:
            raise ValueError(f"images must have shape [B, {self.proj.in_channels}, {self.img_size}, "
                             f"{self.img_size}], got {list(imgs.shape)}")
        return self.proj(imgs).flatten(2).transpose(1, 2)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def _split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[B, N, heads * d] -> [B, heads, N, d] (a view)."""
    batch, n, dim = x.shape
    return x.view(batch, n, heads, dim // heads).transpose(1, 2)


def _merge_heads(x: torch.Tensor) -> torch.Tensor:
    """[B, heads, N, d] -> [B, N, heads * d]."""
    batch, heads, n, d = x.shape
    return x.transpose(1, 2).reshape(batch, n, heads * d)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, backend: AttentionBackend):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.backend = backend

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        batch, n, dim = x.shape
        # [B, N, 3, H, d] -> three [B, H, N, d] strided views (no copies; the kernel takes strides)
        q, k, v = self.qkv(x).view(batch, n, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(_merge_heads(self.backend(q, k, v, pos, pos)))


class CrossAttention(nn.Module):
    """Queries from x, keys and values from the memory (CroCo's reference-view tokens)."""

    def __init__(self, dim: int, heads: int, backend: AttentionBackend):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.backend = backend

    def forward(self, x, mem, x_pos=None, mem_pos=None) -> torch.Tensor:
        batch, n_mem, dim = mem.shape
        q = _split_heads(self.q(x), self.heads)
        k, v = self.kv(mem).view(batch, n_mem, 2, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        return self.proj(_merge_heads(self.backend(q, k, v, x_pos, mem_pos)))


class Block(nn.Module):
    """Encoder (and MAE decoder) block: x + attn(norm1(x)); x + mlp(norm2(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, backend: AttentionBackend):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, backend)
        self.norm2 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


class CrossBlock(nn.Module):
    """CroCo decoder block: self-attention, cross-attention to the (normalized) reference
    tokens, MLP; each pre-norm with a residual."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, backend: AttentionBackend):
        super().__init__()
        self.norm1 = LayerNorm(dim)
        self.attn = SelfAttention(dim, heads, backend)
        self.norm2 = LayerNorm(dim)
        self.norm_mem = LayerNorm(dim)
        self.cross_attn = CrossAttention(dim, heads, backend)
        self.norm3 = LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x, mem, x_pos=None, mem_pos=None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), x_pos)
        x = x + self.cross_attn(self.norm2(x), self.norm_mem(mem), x_pos, mem_pos)
        return x + self.mlp(self.norm3(x))
