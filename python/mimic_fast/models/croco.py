"""CroCo: cross-view completion (Weinzaepfel et al. 2022; v2 with RoPE-100, 2023).

The target view is masked (90%) and encoded from its visible patches; the reference view is
encoded whole by the same encoder. The decoder fills the masked view with mask tokens and
runs blocks of self-attention, cross-attention to the reference tokens and an MLP, then
predicts every patch's (normalized) pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from mimic_fast.models.base import MaskedImageModel
from mimic_fast.models.blocks import CrossBlock, LayerNorm
from mimic_fast.models.config import ModelConfig
from mimic_fast.models.encoder import ViTEncoder
from mimic_fast.models.masking import PatchMask, gather_tokens
from mimic_fast.models.pos_embed import sincos_2d_pos_embed


class CroCo(MaskedImageModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.encoder = ViTEncoder(cfg, self.backend, cls_token=False)
        self.decoder_embed = nn.Linear(cfg.enc_dim, cfg.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_dim))
        if cfg.pos_embed == "cosine":
            self.register_buffer("decoder_pos_embed", sincos_2d_pos_embed(cfg.dec_dim, cfg.grid_size)[None],
                                 persistent=False)
        else:
            self.decoder_pos_embed = None
        self.decoder_blocks = nn.ModuleList(
            CrossBlock(cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio, self.backend) for _ in range(cfg.dec_depth))
        self.decoder_norm = LayerNorm(cfg.dec_dim)
        self.decoder_pred = nn.Linear(cfg.dec_dim, cfg.patch_size ** 2 * 3)
        self.init_weights()

    def decode(self, visible: torch.Tensor, patch_mask: PatchMask, reference: torch.Tensor) -> torch.Tensor:
        """visible [B, n_vis, C] and reference [B, N, C] encoder tokens -> pred [B, N, p*p*3]."""
        batch, n = reference.shape[0], self.num_patches
        x = self.decoder_embed(visible)
        mem = self.decoder_embed(reference)
        mask_tokens = self.mask_token.expand(batch, n - x.shape[1], -1)
        x = gather_tokens(torch.cat((x, mask_tokens), dim=1), patch_mask.ids_restore)  # raster order
        pos = None
        if self.decoder_pos_embed is not None:
            x = x + self.decoder_pos_embed
            mem = mem + self.decoder_pos_embed
        else:
            pos = self.encoder.patch_pos.expand(batch, -1, -1)
        for block in self.decoder_blocks:
            x = block(x, mem, pos, pos)
        return self.decoder_pred(self.decoder_norm(x))

    def forward(self, target_view: torch.Tensor, reference_view: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """Args:
            target_view, reference_view: [B, 3, H, W], normalized with ImageNet mean/std.
            mask: optional bool [B, N] (True = masked, exactly ``round(N * mask_ratio)`` per
                row) to fix the mask; otherwise drawn at random (using ``generator``).
        Returns:
            loss (scalar, MSE over masked patches), pred [B, N, p*p*3], mask bool [B, N].
        """
        if reference_view is None:
            raise ValueError("CroCo needs reference_view (the unmasked second view), got None")
        if reference_view.shape != target_view.shape:
            raise ValueError(f"reference_view must have the shape of target_view {list(target_view.shape)}, "
                             f"got {list(reference_view.shape)}")
        patch_mask = self.make_mask(target_view.shape[0], target_view.device, mask, generator)
        visible, _ = self.encoder(target_view, patch_mask.ids_keep)
        reference, _ = self.encoder(reference_view)
        pred = self.decode(visible, patch_mask, reference)
        return self.loss(target_view, pred, patch_mask.mask), pred, patch_mask.mask
