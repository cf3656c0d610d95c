"""AdamW with the MAE / CroCo parameter groups."""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: weight decay on matrices (linear and conv weights, tokens), none on biases,
    norm weights and other 1-D parameters, nor on names the model lists in
    ``no_weight_decay()`` (timm's rule)."""
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias") or name in skip:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float, betas=(0.9, 0.95),
                   device: str = "cpu") -> torch.optim.AdamW:
    """AdamW; the fused CUDA implementation on CUDA (one kernel for all parameters)."""
    fused = device == "cuda"
    groups = param_groups(model, weight_decay)
    log.info("AdamW%s: %d tensors with weight decay %.3g, %d without", " (fused)" if fused else "",
             len(groups[0]["params"]), weight_decay, len(groups[1]["params"]))
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=fused)
