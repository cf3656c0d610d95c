"""Random patch masking by index gather/scatter: no boolean indexing, no host syncs.

A mask is carried as two index tensors: ``ids_keep`` [B, n_visible] (which patches the
encoder sees, in that order) and ``ids_restore`` [B, N] (where each patch sits in the
sequence [visible tokens, masked tokens]), plus the boolean ``mask`` [B, N] (True = masked)
that is returned to the caller. All shapes are static, so the masking is CUDA-graph friendly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class PatchMask:
    ids_keep: torch.Tensor  # int64 [B, n_visible]
    ids_restore: torch.Tensor  # int64 [B, N]
    mask: torch.Tensor  # bool [B, N], True = masked


def _from_shuffle(ids_shuffle: torch.Tensor, num_visible: int) -> PatchMask:
    """ids_shuffle [B, N]: a permutation of patches per row, visible ones first."""
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    # Position in the shuffled order >= num_visible means masked.
    mask = ids_restore >= num_visible
    return PatchMask(ids_shuffle[:, :num_visible], ids_restore, mask)


def random_mask(batch: int, num_patches: int, num_masked: int, device,
                generator: torch.Generator | None = None) -> PatchMask:
    """Mask exactly ``num_masked`` patches per row, uniformly at random (argsort of noise)."""
    noise = torch.rand(batch, num_patches, device=device, generator=generator)
    return _from_shuffle(torch.argsort(noise, dim=1), num_patches - num_masked)


def mask_from_bool(mask: torch.Tensor, num_patches: int, num_masked: int, device) -> PatchMask:
    """Index form of a given bool mask [B, N] with exactly ``num_masked`` True per row.

    Visible patches keep raster order. The per-row count is checked with an asynchronous
    device assert (no host sync): a wrong count fails at the next synchronization.
    """
    if mask.dtype != torch.bool or mask.dim() != 2 or mask.shape[1] != num_patches:
        raise ValueError(f"mask must be a bool tensor [B, {num_patches}], got {mask.dtype} {list(mask.shape)}")
    if mask.device != torch.device(device):
        raise ValueError(f"mask must be on the images' device ({device}), got {mask.device}")
    torch._assert_async((mask.sum(dim=1) == num_masked).all(),
                        f"mask must have exactly {num_masked} True (masked) patches per row")
    ids_shuffle = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)
    return _from_shuffle(ids_shuffle, num_patches - num_masked)


def gather_tokens(x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """x [B, N, C] -> x[b, ids[b]] [B, n, C] (also works for integer position tensors)."""
    return torch.gather(x, 1, ids[..., None].expand(-1, -1, x.shape[-1]))
