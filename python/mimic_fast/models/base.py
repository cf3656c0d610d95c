"""What CroCo and MAE share: patchify, masking, the normalized-pixel loss, init, FLOPs."""

from __future__ import annotations

import logging

import torch
from torch import nn

from mimic_fast.models import flops, timm_export
from mimic_fast.models.attn_backend import AttentionBackend, check_attn_impl
from mimic_fast.models.config import ModelConfig
from mimic_fast.models.masking import PatchMask, mask_from_bool, random_mask

log = logging.getLogger(__name__)


class MaskedImageModel(nn.Module):
    """Base class; subclasses build ``self.encoder`` and a decoder and implement forward."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        check_attn_impl(cfg.attn_impl)
        log.info("building %s (pos_embed=%s, attn_impl=%s)", cfg.arch, cfg.pos_embed, cfg.attn_impl)
        self.cfg = cfg
        self.backend = AttentionBackend(cfg.attn_impl, cfg.rope_base)

    # --- geometry -------------------------------------------------------------------------
    @property
    def patch_size(self) -> int:
        return self.cfg.patch_size

    @property
    def img_size(self) -> int:
        return self.cfg.img_size

    @property
    def mask_ratio(self) -> float:
        return self.cfg.mask_ratio

    @property
    def num_patches(self) -> int:
        return self.cfg.num_patches

    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, N, p*p*3], patches in raster order, pixels (row, col, channel)."""
        p, g = self.patch_size, self.cfg.grid_size
        x = imgs.reshape(imgs.shape[0], 3, g, p, g, p)
        return torch.einsum("bchpwq->bhwpqc", x).reshape(imgs.shape[0], g * g, p * p * 3)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, p*p*3] -> [B, 3, H, W] (inverse of ``patchify``)."""
        p, g = self.patch_size, self.cfg.grid_size
        x = x.reshape(x.shape[0], g, g, p, p, 3)
        return torch.einsum("bhwpqc->bchpwq", x).reshape(x.shape[0], 3, g * p, g * p)

    # --- masking and loss -----------------------------------------------------------------
    def make_mask(self, batch: int, device, mask: torch.Tensor | None,
                  generator: torch.Generator | None) -> PatchMask:
        if mask is not None:
            return mask_from_bool(mask, self.num_patches, self.cfg.num_masked, device)
        return random_mask(batch, self.num_patches, self.cfg.num_masked, device, generator)

    def loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error over masked patches (fp32), targets normalized per patch."""
        target = self.patchify(imgs).float()
        if self.cfg.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6).sqrt()
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # [B, N]
        # Exactly num_masked patches per row are masked: a Python constant, no reduction or sync.
        return (per_patch * mask.to(per_patch.dtype)).sum() / (imgs.shape[0] * self.cfg.num_masked)

    # --- init, accounting, export ----------------------------------------------------------
    def init_weights(self) -> None:
        """MAE/CroCo init: xavier-uniform linears (and patch projection), zero biases,
        unit LayerNorms, N(0, 0.02) cls and mask tokens."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        proj = self.encoder.patch_embed.proj
        nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
        nn.init.zeros_(proj.bias)
        for name, param in self.named_parameters():
            if name.endswith("cls_token") or name.endswith("mask_token"):
                nn.init.normal_(param, std=0.02)

    def flops_per_sample(self) -> int:
        """Approximate forward FLOPs per sample, matmuls only (fwd + bwd is about 3x)."""
        return flops.forward_flops(self.cfg)

    def encoder_state_dict_timm(self) -> dict[str, torch.Tensor]:
        """Encoder weights in timm VisionTransformer layout (see ``timm_export``)."""
        return timm_export.encoder_state_dict_timm(self.encoder, self.cfg)

    def timm_kwargs(self) -> dict:
        """``timm.create_model(**model.timm_kwargs())`` builds the matching timm encoder."""
        return timm_export.timm_model_kwargs(self.cfg)
