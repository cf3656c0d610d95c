"""CroCo and MAE masked-image models with our own ViT blocks.

    model = create_model("croco_base", pos_embed="cosine" | "rope100", attn_impl="auto")
    loss, pred, mask = model(target_view, reference_view)   # CroCo
    loss, pred, mask = model(images)                        # MAE
"""

from mimic_fast.models.base import MaskedImageModel
from mimic_fast.models.config import ModelConfig
from mimic_fast.models.croco import CroCo
from mimic_fast.models.mae import MAE
from mimic_fast.models.registry import create_model, list_models, model_config

__all__ = ["MAE", "CroCo", "MaskedImageModel", "ModelConfig", "create_model", "list_models", "model_config"]
