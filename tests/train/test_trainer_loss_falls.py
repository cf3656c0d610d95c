"""croco_test and mae_test learn on pairs mined from ../shared/data: the loss falls."""

from __future__ import annotations

import json

import numpy as np
import pytest
from run_helpers import losses, metrics, run_cli, train_args

from mimic_fast.train.config import PRESET_OPTIM


@pytest.mark.parametrize("model", ["croco_test", "mae_test"])
def test_loss_falls(mined_tum, tmp_path, model):
    """With the preset's own lr and warmup (no --lr): at batch 4 the blr rule alone gave
    2.3e-6 and 40 steps moved the loss by 0.1%."""
    run = tmp_path / model
    assert run_cli(train_args(mined_tum, run, model=model, steps=40, optim=())) == 0
    curve = losses(run)
    assert len(curve) == 40 and all(np.isfinite(curve))
    first, last = np.mean(curve[:5]), np.mean(curve[-5:])
    assert last < 0.95 * first, (first, last)
    rec = metrics(run)[-1]
    assert rec["step"] == 40 and rec["pairs_per_s"] > 0 and rec["samples"] == 160
    assert rec["mfu"] is None  # CPU: no peak FLOP/s to compare with
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert cfg["model"] == model and cfg["optim"]["schedule_steps"] == 40
    assert cfg["optim"]["lr"] == PRESET_OPTIM[model]["lr"]
    assert (run / "checkpoint.pt").is_file() and (run / "tb").is_dir()
