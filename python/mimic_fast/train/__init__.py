"""Pretraining CroCo / MAE on mined pairs: config (here), the loop (``trainer.train``),
checkpoints, evaluation (``evaluate.evaluate``) and the CLI (``commands``)."""

from mimic_fast.train.config import OptimConfig, TrainConfig

__all__ = ["OptimConfig", "TrainConfig"]
