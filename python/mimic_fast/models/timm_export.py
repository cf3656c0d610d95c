"""Export of the encoder to timm's VisionTransformer state-dict layout.

Our block parameters already carry timm's names (``blocks.i.attn.qkv``, ``blocks.i.mlp.fc1``,
...), so the export copies them and adds the fixed positional embedding as timm's
``pos_embed`` parameter. CroCo encoders have no cls token: they map onto timm's ViT built
with ``class_token=False, global_pool="avg", fc_norm=False`` (final norm kept on the tokens).
The classifier head is not exported (build timm with ``num_classes=0``).
RoPE encoders have no timm equivalent and are refused.
"""

from __future__ import annotations

import torch

from mimic_fast.models.config import ModelConfig

# (enc_dim, enc_heads, patch_size) -> (timm architecture family, its depth)
_TIMM_NAMES = {
    (192, 3, 16): ("vit_tiny_patch16", 12),
    (384, 6, 16): ("vit_small_patch16", 12),
    (768, 12, 16): ("vit_base_patch16", 12),
    (1024, 16, 16): ("vit_large_patch16", 24),
}


def _check_exportable(cfg: ModelConfig) -> tuple[str, int]:
    if cfg.pos_embed != "cosine":
        raise ValueError(f"only encoders with pos_embed='cosine' map onto timm's ViT, got {cfg.pos_embed!r}")
    if cfg.mlp_ratio != 4.0:
        raise ValueError(f"timm's ViT presets use mlp_ratio=4.0, got {cfg.mlp_ratio}")
    key = (cfg.enc_dim, cfg.enc_heads, cfg.patch_size)
    if key not in _TIMM_NAMES:
        raise ValueError(f"no timm ViT preset for (dim, heads, patch) = {key}; known: {sorted(_TIMM_NAMES)}")
    family, depth = _TIMM_NAMES[key]
    return f"{family}_224", depth  # other image sizes: img_size= below


def timm_model_kwargs(cfg: ModelConfig) -> dict:
    """Arguments of ``timm.create_model`` for the encoder's timm twin (no pretrained weights)."""
    name, preset_depth = _check_exportable(cfg)
    kwargs = dict(model_name=name, pretrained=False, num_classes=0, img_size=cfg.img_size)
    if cfg.enc_depth != preset_depth:
        kwargs["depth"] = cfg.enc_depth
    if cfg.arch == "croco":
        kwargs.update(class_token=False, global_pool="avg", fc_norm=False)
    return kwargs


def encoder_state_dict_timm(encoder: torch.nn.Module, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """State dict of ``encoder`` (a ``ViTEncoder``) with timm's keys, detached copies."""
    _check_exportable(cfg)
    out = {
        "patch_embed.proj.weight": encoder.patch_embed.proj.weight,
        "patch_embed.proj.bias": encoder.patch_embed.proj.bias,
        "pos_embed": encoder.pos_embed,  # [1, (1 +) N, C], includes the cls row when present
        "norm.weight": encoder.norm.weight,
        "norm.bias": encoder.norm.bias,
    }
    if encoder.cls_token is not None:
        out["cls_token"] = encoder.cls_token
    for key, value in encoder.blocks.state_dict().items():
        out[f"blocks.{key}"] = value
    return {key: value.detach().clone() for key, value in out.items()}
