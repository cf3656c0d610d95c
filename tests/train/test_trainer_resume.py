"""Checkpoints and resume: a stopped-and-rerun run continues exactly; settings are guarded."""

from __future__ import annotations

import json

import torch
from run_helpers import losses, metrics, run_cli, train_args

from mimic_fast.train import checkpoint as ckpt_io


def test_resume_equals_uninterrupted(mined_tum, tmp_path):
    common = ("--schedule-steps", "9", "--accum", "2", "--batch-size", "2", "--ckpt-every", "2")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli(train_args(mined_tum, straight, steps=9, extra=common)) == 0
    assert run_cli(train_args(mined_tum, split, steps=5, extra=common)) == 0
    state = ckpt_io.load(split)
    assert state["step"] == 5 and state["data"]["micro_batches"] == 10
    assert set(state["rng"][0]) >= {"python", "numpy", "torch"}
    # the same command with a larger --max-steps (and other workers) resumes from the folder
    assert run_cli(train_args(mined_tum, split, steps=9, extra=common + ("--num-workers", "2"))) == 0
    assert losses(split) == losses(straight)  # bit-identical on CPU
    assert [m["step"] for m in metrics(split)] == list(range(1, 10))
    a, b = ckpt_io.load(straight), ckpt_io.load(split)
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_metrics_after_the_checkpoint_are_dropped_on_resume(mined_tum, tmp_path):
    run = tmp_path / "run"
    assert run_cli(train_args(mined_tum, run, steps=4, extra=("--ckpt-every", "3"))) == 0
    # simulate a crash after step 4 was logged but before its checkpoint: checkpoint at 3
    state = ckpt_io.load(run)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    fake = tmp_path / "crashed"
    assert run_cli(train_args(mined_tum, fake, steps=3, extra=("--ckpt-every", "3"))) == 0
    (fake / "metrics.jsonl").write_text("\n".join(lines) + "\n")  # steps 1..4 logged
    assert ckpt_io.load(fake)["step"] == 3 and state["step"] == 4
    assert run_cli(train_args(mined_tum, fake, steps=4, extra=("--ckpt-every", "3"))) == 0
    assert [m["step"] for m in metrics(fake)] == [1, 2, 3, 4]
    assert losses(fake) == losses(run)


def test_changed_settings_are_refused(mined_tum, tmp_path, capsys):
    run = tmp_path / "run"
    assert run_cli(train_args(mined_tum, run, steps=2)) == 0
    capsys.readouterr()
    assert run_cli(train_args(mined_tum, run, steps=3, batch=2)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mimic-fast train: error:") and "batch_size: 4 -> 2" in err
    assert ckpt_io.load(run)["step"] == 2


def test_a_finished_run_is_not_trained_again(mined_tum, tmp_path):
    run = tmp_path / "run"
    assert run_cli(train_args(mined_tum, run, steps=2)) == 0
    before = (run / "checkpoint.pt").stat().st_mtime_ns
    assert run_cli(train_args(mined_tum, run, steps=2)) == 0
    assert (run / "checkpoint.pt").stat().st_mtime_ns == before
    assert json.loads((run / "summary.json").read_text())["step"] == 2
