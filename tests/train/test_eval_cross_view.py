"""`mimic-fast eval` tells whether the second view helps (loss with the true vs a shuffled
reference), warns when it evaluates pairs the run trained on, and works from any directory."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from run_helpers import holdout_fraction, run_cli, train_args

from mimic_fast.data.index import holdout_rows, open_index
from mimic_fast.data.loader import PairDataset
from mimic_fast.data.transforms import PairTransform, normalize
from mimic_fast.train import checkpoint as ckpt_io
from mimic_fast.train.config import TrainConfig
from mimic_fast.train.evaluate import evaluate, reference_partners
from mimic_fast.train.trainer import build_model


@pytest.fixture(scope="module")
def holdout(mined_tum) -> float:
    return holdout_fraction(mined_tum, 3)


@pytest.fixture(scope="module")
def run(mined_tum, holdout, tmp_path_factory):
    out = tmp_path_factory.mktemp("crossview") / "run"
    assert run_cli(train_args(mined_tum, out, steps=3, batch=2,
                              extra=("--holdout", repr(holdout)))) == 0
    return out


def _sample(dataset: PairDataset, keys: list[str], key: str) -> dict:
    return dataset[keys.index(key)]


def test_both_losses_equal_a_direct_computation(run, mined_tum, tmp_path):
    result = evaluate(run, out=tmp_path, batch_size=3, num_workers=0)
    assert result["split"] == "holdout" and result["pairs"] >= 2 and result["views"] == 2
    for name in ("loss", "loss_shuffled_reference", "cross_view_gain", "pixel_mse"):
        assert np.isfinite(result[name]), name
    assert result["cross_view_gain"] == pytest.approx(
        result["loss_shuffled_reference"] - result["loss"], abs=1e-12)

    # The same numbers from the model's own loss, one pair at a time, the partner named in
    # the result: its reference view in place of the pair's own, the same mask.
    state = ckpt_io.load(run)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.eval()
    mc = model.cfg
    index = open_index(mined_tum)
    keys = list(index.keys)
    dataset = PairDataset(index, PairTransform(mc.img_size, mc.num_patches, mc.num_masked, True),
                          0, key_by="key")
    own, shuffled = [], []
    for row in result["per_pair"]:
        assert row["reference_from"] != row["key"]
        pair, partner = _sample(dataset, keys, row["key"]), _sample(dataset, keys, row["reference_from"])
        target = normalize(pair["target"][None])
        mask = pair["mask"][None]
        with torch.no_grad():
            own.append(model(target, normalize(pair["reference"][None]), mask=mask)[0].item())
            shuffled.append(model(target, normalize(partner["reference"][None]), mask=mask)[0].item())
        assert row["loss"] == pytest.approx(own[-1], rel=1e-4)
        assert row["loss_shuffled_reference"] == pytest.approx(shuffled[-1], rel=1e-4)
    assert result["loss"] == pytest.approx(np.mean(own), rel=1e-4)
    assert result["loss_shuffled_reference"] == pytest.approx(np.mean(shuffled), rel=1e-4)
    saved = json.loads(next(tmp_path.glob("eval-*.json")).read_text())
    assert saved["cross_view_gain"] == result["cross_view_gain"]


def test_partners_come_from_other_sources_and_ignore_batching():
    a = [f"{'a' * 16}-{i:06d}-{i + 1:06d}" for i in range(5)]
    b = [f"{'b' * 16}-{i:06d}-{i + 1:06d}" for i in range(3)]
    keys = a + b
    partners = reference_partners(keys)
    assert all(keys[j][0] != keys[i][0] for i, j in enumerate(partners))
    assert np.array_equal(partners, reference_partners(keys))
    one_source = reference_partners(a)  # no other scene: any other pair, never itself
    assert all(j != i for i, j in enumerate(one_source)) and len(set(one_source)) > 1


def test_a_single_view_model_has_no_cross_view_gain(mined_tum, holdout, tmp_path):
    out = tmp_path / "mae"
    assert run_cli(train_args(mined_tum, out, model="mae_test", steps=1, batch=2,
                              extra=("--holdout", repr(holdout)))) == 0
    result = evaluate(out, out=tmp_path, max_pairs=2, num_workers=0)
    assert result["views"] == 1 and np.isfinite(result["loss"])
    assert result["loss_shuffled_reference"] is None and result["cross_view_gain"] is None


def test_evaluating_training_pairs_warns(mined_tum, run, holdout, tmp_path, caplog, capsys):
    held = evaluate(run, out=tmp_path, max_pairs=2, num_workers=0)
    assert held["seen_in_training"] == 0
    with caplog.at_level(logging.WARNING):
        every = evaluate(run, split="all", out=tmp_path, num_workers=0)
    trained = ~holdout_rows(list(open_index(mined_tum).keys), holdout)
    assert every["seen_in_training"] == trained.sum() and 0 < trained.sum() < every["pairs"]
    assert "seen in training" in caplog.text

    no_holdout = tmp_path / "no-holdout"
    assert run_cli(train_args(mined_tum, no_holdout, steps=1, batch=2)) == 0
    capsys.readouterr()
    assert run_cli(["eval", str(no_holdout), "--max-pairs", "2", "--num-workers", "0"]) == 0
    assert "2 of them seen in training" in capsys.readouterr().out


def test_runs_record_absolute_paths_and_eval_works_from_elsewhere(mined_tum, tmp_path, monkeypatch):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir(), elsewhere.mkdir()
    (start / "data").symlink_to(mined_tum)
    monkeypatch.chdir(start)
    assert run_cli(train_args("data", "run", steps=1, batch=2)) == 0  # relative paths
    saved = json.loads((start / "run" / "config.json").read_text())["train"]
    assert saved["out"] == str(start / "run") and saved["data"]["path"] == str(start / "data")
    monkeypatch.chdir(elsewhere)
    assert run_cli(["eval", str(start / "run"), "--max-pairs", "2", "--num-workers", "0"]) == 0
    assert list((start / "run" / "eval").glob("eval-*.png"))
