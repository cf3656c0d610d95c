"""The ViT encoder shared by CroCo and MAE (parameter names follow timm's VisionTransformer)."""

from __future__ import annotations

import torch
from torch import nn

from mimic_fast.models.attn_backend import AttentionBackend
from mimic_fast.models.blocks import Block, LayerNorm, PatchEmbed
from mimic_fast.models.config import ModelConfig
from mimic_fast.models.masking import gather_tokens
from mimic_fast.models.pos_embed import patch_positions, sincos_2d_pos_embed


class ViTEncoder(nn.Module):
    """Patch embedding, optional cls token, fixed positional encoding, blocks, final norm.

    With ``pos_embed="cosine"`` a fixed 2D sin-cos embedding is added to the patch tokens;
    with ``"rope100"`` nothing is added and every attention rotates q and k by the tokens'
    (y, x) patch coordinates instead. Under RoPE the cls token sits at (0, 0), i.e. it is
    not rotated.
    """

    def __init__(self, cfg: ModelConfig, backend: AttentionBackend, cls_token: bool):
        super().__init__()
        self.cfg = cfg
        self.use_rope = cfg.pos_embed == "rope100"
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.enc_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.enc_dim)) if cls_token else None
        self.num_prefix_tokens = int(cls_token)
        # Fixed (not learned) encodings: buffers, rebuilt at construction, not saved.
        self.register_buffer("patch_pos", patch_positions(cfg.grid_size), persistent=False)
        if not self.use_rope:
            emb = sincos_2d_pos_embed(cfg.enc_dim, cfg.grid_size, cls_token=cls_token)
            self.register_buffer("pos_embed", emb[None], persistent=False)  # [1, (1 +) N, C]
        else:
            self.pos_embed = None
        self.blocks = nn.ModuleList(
            Block(cfg.enc_dim, cfg.enc_heads, cfg.mlp_ratio, backend) for _ in range(cfg.enc_depth))
        self.norm = LayerNorm(cfg.enc_dim)

    def forward(self, imgs: torch.Tensor, ids_keep: torch.Tensor | None = None):
        """Encode images [B, 3, H, W], keeping only patches ``ids_keep`` [B, n] when given.

        Returns tokens [B, (1 +) n, C] (cls first when present) and their positions
        [B, (1 +) n, 2] (int64 (y, x); None unless RoPE is used).
        """
        x = self.patch_embed(imgs)
        batch = x.shape[0]
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, self.num_prefix_tokens:]
        pos = self.patch_pos.expand(batch, -1, -1) if self.use_rope else None
        if ids_keep is not None:
            x = gather_tokens(x, ids_keep)
            pos = gather_tokens(pos, ids_keep) if pos is not None else None
        if self.cls_token is not None:
            cls = self.cls_token if self.pos_embed is None else self.cls_token + self.pos_embed[:, :1]
            x = torch.cat((cls.expand(batch, -1, -1), x), dim=1)
            if pos is not None:
                pos = torch.cat((pos.new_zeros(batch, 1, 2), pos), dim=1)
        for block in self.blocks:
            x = block(x, pos)
        return self.norm(x), pos
