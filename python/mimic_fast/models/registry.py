"""Named model presets and ``create_model``."""

from __future__ import annotations

from dataclasses import replace

from mimic_fast.models.base import MaskedImageModel
from mimic_fast.models.config import ModelConfig

_BASE_ENCODER = dict(enc_dim=768, enc_depth=12, enc_heads=12)
_TINY = dict(enc_dim=64, enc_depth=2, enc_heads=2, dec_dim=64, dec_depth=2, dec_heads=2)

_PRESETS: dict[str, ModelConfig] = {
    # CroCo v1/v2 (MIMIC): ViT-B/16 encoder, 512 x 8 decoder with 16 heads, 90% masked.
    "croco_base": ModelConfig(arch="croco", **_BASE_ENCODER, dec_dim=512, dec_depth=8, dec_heads=16, mask_ratio=0.9),
    # CroCo v2 large: ViT-L/16 encoder, 768 x 12 decoder with 12 heads.
    "croco_large": ModelConfig(arch="croco", enc_dim=1024, enc_depth=24, enc_heads=16,
                               dec_dim=768, dec_depth=12, dec_heads=12, mask_ratio=0.9),
    # MAE ViT-B/16: 75% masked, 512 x 8 decoder.
    "mae_base": ModelConfig(arch="mae", **_BASE_ENCODER, dec_dim=512, dec_depth=8, dec_heads=16, mask_ratio=0.75),
    # Tiny variants for CI (224 x 224 images, like the mined pairs; head dim 32).
    "croco_test": ModelConfig(arch="croco", **_TINY, mask_ratio=0.9),
    "mae_test": ModelConfig(arch="mae", **_TINY, mask_ratio=0.75),
}


def list_models() -> list[str]:
    """Names accepted by ``create_model``."""
    return sorted(_PRESETS)


def _unknown_model(name: str) -> ValueError:
    import difflib

    close = difflib.get_close_matches(name, list_models(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ValueError(f"unknown model {name!r}{hint}; available: {', '.join(list_models())}")


def model_config(name: str, **overrides) -> ModelConfig:
    """The preset ``name`` with fields replaced by ``overrides`` (validated)."""
    if name not in _PRESETS:
        raise _unknown_model(name)
    unknown = set(overrides) - set(ModelConfig.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)}; "
                         f"options: {sorted(ModelConfig.__dataclass_fields__)}")
    return replace(_PRESETS[name], **overrides)


def create_model(name: str, pos_embed: str = "cosine", attn_impl: str = "auto", **overrides) -> MaskedImageModel:
    """Build a freshly initialized model.

    Args:
        name: one of ``list_models()``.
        pos_embed: "cosine" (2D sin-cos, CroCo v1 / MIMIC / MAE) or "rope100" (CroCo v2).
        attn_impl: "auto" (Triton kernel on CUDA, torch SDPA otherwise), "triton" (raises
            where the kernel cannot run) or "torch".
        overrides: other ``ModelConfig`` fields, e.g. ``img_size=64, mask_ratio=0.8``.
    """
    cfg = model_config(name, pos_embed=pos_embed, attn_impl=attn_impl, **overrides)
    if cfg.arch == "croco":
        from mimic_fast.models.croco import CroCo

        return CroCo(cfg)
    from mimic_fast.models.mae import MAE

    return MAE(cfg)
