"""Positional encodings: patch coordinates, fixed 2D sin-cos embeddings and torch RoPE-2D.

Conventions follow MAE / CroCo so their checkpoints stay meaningful:
  * patches are in raster order, patch index = row * grid + col, coordinates (y, x) = (row, col);
  * the 2D sin-cos embedding spends its first half of channels on the column (x) and the
    second half on the row (y); each half is [sin(pos * w), cos(pos * w)] with
    w_i = 10000 ** (-i / (dim / 4)).
"""

from __future__ import annotations

import torch

from mimic_fast.kernels.reference import rope_inv_freq


def patch_positions(grid_size: int, device=None) -> torch.Tensor:
    """(y, x) coordinates of a grid_size x grid_size patch grid, raster order. int64 [N, 2]."""
    coords = torch.arange(grid_size, device=device)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")
    return torch.stack((rows.reshape(-1), cols.reshape(-1)), dim=-1)


def _sincos_1d(dim: int, pos: torch.Tensor) -> torch.Tensor:
    """[len(pos), dim] = [sin(pos * w), cos(pos * w)], w_i = 10000 ** (-i / (dim / 2)), in fp64."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = pos.to(torch.float64)[:, None] * omega[None, :]
    return torch.cat((angles.sin(), angles.cos()), dim=1)


def sincos_2d_pos_embed(dim: int, grid_size: int, cls_token: bool = False) -> torch.Tensor:
    """Fixed 2D sin-cos embedding, fp32 [N (+1), dim]; the cls token row (first) is zeros."""
    if dim % 4:
        raise ValueError(f"dim must be divisible by 4 for a 2D sin-cos embedding, got {dim}")
    pos = patch_positions(grid_size)
    emb = torch.cat((_sincos_1d(dim // 2, pos[:, 1]), _sincos_1d(dim // 2, pos[:, 0])), dim=1)
    if cls_token:
        emb = torch.cat((torch.zeros(1, dim, dtype=emb.dtype), emb), dim=0)
    return emb.float()


def rope2d_cos_sin(pos: torch.Tensor, head_dim: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [B, 1, N, head_dim] (fp32) for RoPE-2D at integer positions pos [B, N, 2].

    Channel layout matches ``kernels.reference``: [y-half | x-half], each half rotate-half
    paired, so a half's angles are [theta_0..theta_{d/4-1}, theta_0..theta_{d/4-1}].
    """
    inv_freq = rope_inv_freq(head_dim, base, device=pos.device)  # [head_dim / 4]
    angles = pos.to(torch.float32)[..., None] * inv_freq  # [B, N, 2, head_dim / 4]
    angles = torch.cat((angles, angles), dim=-1).flatten(-2)  # [B, N, head_dim]: y-half then x-half
    angles = angles[:, None]
    return angles.cos(), angles.sin()


def apply_rope2d(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [B, H, N, D] with tables from ``rope2d_cos_sin`` (math in fp32, result in x's dtype)."""
    xf = x.float()
    quarter = x.shape[-1] // 4
    y1, y2, x1, x2 = xf.split(quarter, dim=-1)
    rotated_half = torch.cat((-y2, y1, -x2, x1), dim=-1)
    return (xf * cos + rotated_half * sin).to(x.dtype)
