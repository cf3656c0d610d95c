"""Model configuration: one dataclass describes every CroCo / MAE variant."""

from __future__ import annotations

from dataclasses import dataclass

POS_EMBEDS = ("cosine", "rope100")
ATTN_IMPLS = ("auto", "triton", "torch")
ARCHS = ("croco", "mae")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a masked-image model (encoder ViT + lightweight decoder)."""

    arch: str  # "croco" (masked target view + full reference view) or "mae"
    img_size: int = 224
    patch_size: int = 16
    enc_dim: int = 768
    enc_depth: int = 12
    enc_heads: int = 12
    dec_dim: int = 512
    dec_depth: int = 8
    dec_heads: int = 16
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.9
    pos_embed: str = "cosine"  # "cosine" (2D sin-cos, CroCo v1 / MAE / MIMIC) or "rope100" (CroCo v2)
    norm_pix_loss: bool = True  # targets normalized per patch (mean / std over its pixels)
    attn_impl: str = "auto"  # "auto" (Triton on CUDA, torch elsewhere), "triton" or "torch"

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.pos_embed not in POS_EMBEDS:
            raise ValueError(f"pos_embed must be one of {POS_EMBEDS}, got {self.pos_embed!r}")
        if self.attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {self.attn_impl!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size must be a multiple of patch_size={self.patch_size}, got {self.img_size}")
        for name, dim, heads in (("enc", self.enc_dim, self.enc_heads), ("dec", self.dec_dim, self.dec_heads)):
            if dim % heads:
                raise ValueError(f"{name}_dim must be divisible by {name}_heads={heads}, got {dim}")
            if self.pos_embed == "rope100" and (dim // heads) % 4:
                raise ValueError(f"rope100 needs a {name} head dim divisible by 4, got {dim // heads}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0 < self.num_visible < self.num_patches:
            raise ValueError(f"mask_ratio={self.mask_ratio} leaves {self.num_visible} of "
                             f"{self.num_patches} patches visible; need at least one visible and one masked")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size ** 2

    @property
    def num_masked(self) -> int:
        return round(self.num_patches * self.mask_ratio)

    @property
    def num_visible(self) -> int:
        return self.num_patches - self.num_masked

    @property
    def rope_base(self) -> float | None:
        return 100.0 if self.pos_embed == "rope100" else None
