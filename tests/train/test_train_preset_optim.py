"""The optimizer defaults are decided in one place (train/config.py): the tiny presets bring an
lr and a warmup that let a CPU smoke run learn; the large ones keep the MAE/CroCo rule."""

from __future__ import annotations

import logging

import pytest

from mimic_fast.data.config import DataConfig
from mimic_fast.train.config import (BLR, PRESET_OPTIM, OptimConfig, TrainConfig, reconcile,
                                     resolve_new_run)
from mimic_fast.train.schedule import peak_lr


def _new(model="croco_test", steps=300, batch=4, **optim) -> TrainConfig:
    return resolve_new_run(TrainConfig(out="run", model=model, max_steps=steps, batch_size=batch,
                                       data=DataConfig(path="data"), optim=OptimConfig(**optim)))


def test_tiny_presets_bring_a_smoke_run_lr():
    o = _new().optim
    assert (o.lr, o.warmup_steps, o.schedule_steps) == (PRESET_OPTIM["croco_test"]["lr"],
                                                       PRESET_OPTIM["croco_test"]["warmup_steps"], 300)
    # the defect: blr x 4 / 256 = 2.3e-6, too small to see anything learn in a few hundred steps
    assert peak_lr(o.blr, o.lr, 4) == pytest.approx(1e-3)
    assert _new(steps=5).optim.warmup_steps == 5  # a preset's warmup never outlasts the run


def test_large_presets_keep_the_blr_rule():
    o = _new("croco_base", steps=1000, batch=256).optim
    assert o.lr is None and o.blr == BLR and o.warmup_steps == 50
    assert peak_lr(o.blr, o.lr, 256) == pytest.approx(BLR)


def test_the_runs_own_settings_win():
    assert _new(lr=3e-4).optim.lr == 3e-4
    chosen_blr = _new(blr=0.05).optim  # a chosen blr means the blr rule: no preset lr
    assert chosen_blr.lr is None and chosen_blr.blr == 0.05 and chosen_blr.warmup_steps == 20
    assert _new(warmup_steps=3).optim.warmup_steps == 3


def test_paths_are_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _new()
    assert cfg.out == str(tmp_path / "run") and cfg.data.path == str(tmp_path / "data")
    url = resolve_new_run(TrainConfig(out="r", data=DataConfig(path="https://h/x/{0..3}.tar")))
    assert url.data.path == "https://h/x/{0..3}.tar"


def test_a_rerun_that_leaves_the_optimizer_unset_keeps_the_runs():
    saved = _new()
    rerun = TrainConfig(out=saved.out, model="croco_test", max_steps=600, batch_size=4,
                        data=saved.data, optim=OptimConfig())
    merged = reconcile(saved, rerun)
    assert merged.optim == saved.optim and merged.max_steps == 600
    with pytest.raises(ValueError, match="optim.lr"):
        reconcile(saved, rerun.replace(optim=OptimConfig(lr=5e-4)))


def test_a_peak_lr_too_small_to_learn_is_named(mined_tum, tmp_path, caplog):
    from run_helpers import run_cli, train_args

    with caplog.at_level(logging.INFO):
        assert run_cli(train_args(mined_tum, tmp_path / "run", steps=1, optim=("--blr", "1.5e-4"))) == 0
    assert "peak lr 2.34e-06 (blr 0.00015 x 4 / 256" in caplog.text
    assert "too small to see a model learn" in caplog.text
