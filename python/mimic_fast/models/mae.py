"""MAE: masked autoencoder (He et al. 2022). One view, 75% masked, cls token, ViT decoder."""

from __future__ import annotations

import torch
from torch import nn

from mimic_fast.models.base import MaskedImageModel
from mimic_fast.models.blocks import Block, LayerNorm
from mimic_fast.models.config import ModelConfig
from mimic_fast.models.encoder import ViTEncoder
from mimic_fast.models.masking import PatchMask, gather_tokens
from mimic_fast.models.pos_embed import sincos_2d_pos_embed


class MAE(MaskedImageModel):
    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.encoder = ViTEncoder(cfg, self.backend, cls_token=True)
        self.decoder_embed = nn.Linear(cfg.enc_dim, cfg.dec_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dec_dim))
        if cfg.pos_embed == "cosine":
            emb = sincos_2d_pos_embed(cfg.dec_dim, cfg.grid_size, cls_token=True)
            self.register_buffer("decoder_pos_embed", emb[None], persistent=False)
        else:
            self.decoder_pos_embed = None
        self.decoder_blocks = nn.ModuleList(
            Block(cfg.dec_dim, cfg.dec_heads, cfg.mlp_ratio, self.backend) for _ in range(cfg.dec_depth))
        self.decoder_norm = LayerNorm(cfg.dec_dim)
        self.decoder_pred = nn.Linear(cfg.dec_dim, cfg.patch_size ** 2 * 3)
        self.init_weights()

    def decode(self, latent: torch.Tensor, patch_mask: PatchMask) -> torch.Tensor:
        """latent [B, 1 + n_vis, C] (cls first) -> pred [B, N, p*p*3]."""
        batch, n = latent.shape[0], self.num_patches
        x = self.decoder_embed(latent)
        mask_tokens = self.mask_token.expand(batch, n + 1 - x.shape[1], -1)
        patches = gather_tokens(torch.cat((x[:, 1:], mask_tokens), dim=1), patch_mask.ids_restore)
        x = torch.cat((x[:, :1], patches), dim=1)
        pos = None
        if self.decoder_pos_embed is not None:
            x = x + self.decoder_pos_embed
        else:
            grid = self.encoder.patch_pos.expand(batch, -1, -1)
            pos = torch.cat((grid.new_zeros(batch, 1, 2), grid), dim=1)  # cls at (0, 0): unrotated
        for block in self.decoder_blocks:
            x = block(x, pos)
        return self.decoder_pred(self.decoder_norm(x[:, 1:]))

    def forward(self, images: torch.Tensor, reference_view: torch.Tensor | None = None, *,
                mask: torch.Tensor | None = None, generator: torch.Generator | None = None):
        """Args:
            images: [B, 3, H, W], normalized with ImageNet mean/std.
            reference_view: must be None (MAE has a single view; the argument exists so
                CroCo and MAE share a call signature).
            mask: optional bool [B, N] (True = masked, exactly ``round(N * mask_ratio)`` per
                row); otherwise drawn at random (using ``generator``).
        Returns:
            loss (scalar, MSE over masked patches), pred [B, N, p*p*3], mask bool [B, N].
        """
        if reference_view is not None:
            raise ValueError("MAE takes a single view: reference_view must be None")
        patch_mask = self.make_mask(images.shape[0], images.device, mask, generator)
        latent, _ = self.encoder(images, patch_mask.ids_keep)
        pred = self.decode(latent, patch_mask)
        return self.loss(images, pred, patch_mask.mask), pred, patch_mask.mask
