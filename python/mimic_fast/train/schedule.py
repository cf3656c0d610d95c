"""Learning rate per optimizer step: linear warmup, then half-cosine down to ``min_lr``."""

from __future__ import annotations

import math


def lr_at(step: int, peak: float, warmup: int, total: int, min_lr: float = 0.0) -> float:
    """lr for optimizer step ``step`` (0-based). Warmup: peak * (step + 1) / warmup for
    step < warmup; then min_lr + (peak - min_lr) * (1 + cos(pi * t)) / 2 with
    t = (step - warmup) / (total - warmup), held at min_lr once step >= total."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= total:
        return min_lr
    t = (step - warmup) / max(1, total - warmup)
    return min_lr + (peak - min_lr) * 0.5 * (1.0 + math.cos(math.pi * t))


def peak_lr(blr: float, lr: float | None, effective_batch: int) -> float:
    """The MAE / CroCo rule: lr = blr * effective_batch / 256, unless lr is given."""
    return lr if lr is not None else blr * effective_batch / 256


def warmup_steps(warmup: int | None, total: int) -> int:
    return warmup if warmup is not None else round(0.05 * total)
