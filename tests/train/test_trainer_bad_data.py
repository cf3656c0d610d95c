"""Bad data and divergence: a clear error or a counted skip, never a hang; NaN keeps the last
good checkpoint."""

from __future__ import annotations

import logging
import shutil

import pytest
import torch
from run_helpers import metrics, run_cli, train_args
from shard_tools import read_members, write_tar

from mimic_fast.dataset.reader import read_index
from mimic_fast.train import checkpoint as ckpt_io
from mimic_fast.train import trainer


def _corrupt_one_view(dataset, out):
    data = shutil.copytree(dataset, out)
    shard = next(data.glob("*.tar"))
    members = read_members(shard)
    name, payload = members[4]  # sample 1, view 1
    assert name.endswith(".1.jpg")
    members[4] = (name, payload[:300])  # a truncated JPEG
    write_tar(shard, members)
    return data


def test_a_corrupt_jpeg_is_skipped_and_counted(mined_tum, tmp_path, caplog):
    data = _corrupt_one_view(mined_tum, tmp_path / "data")
    run = tmp_path / "run"
    per_epoch = len(read_index(mined_tum)) // 4  # batches of 4
    with caplog.at_level(logging.WARNING):
        assert run_cli(train_args(data, run, steps=2 * per_epoch)) == 0  # 2 epochs
    assert metrics(run)[-1]["skipped"] == 2  # seen once per epoch
    # found by the pair's recorded sha256 before any decoder sees it
    assert "skipping unreadable pair" in caplog.text and "sha256" in caplog.text


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"), ("empty", "no \\*.tar shards"), ("too_small", "fewer than one global"),
])
def test_unusable_datasets_stop_with_a_clear_error(mined_tum, tmp_path, capsys, case, message):
    data = tmp_path / "data"
    batch = 4
    if case == "empty":
        data.mkdir()
    elif case == "too_small":
        data = mined_tum
        batch = 64
    assert run_cli(train_args(data, tmp_path / "run", steps=2, batch=batch)) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message.replace("\\", "") in err, err
    # a missing or empty dataset is found before the run folder is made
    assert (tmp_path / "run").exists() == (case == "too_small")


def test_dali_asked_for_without_dali_is_an_error(mined_tum, tmp_path, capsys):
    assert run_cli(train_args(mined_tum, tmp_path / "run", steps=1, extra=("--decode", "dali"))) == 2
    assert "decode='dali'" in capsys.readouterr().err


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(mined_tum, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = trainer.forward_loss

    def diverging(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 5 else loss  # step 5 goes wrong

    monkeypatch.setattr(trainer, "forward_loss", diverging)
    run = tmp_path / "run"
    args = train_args(mined_tum, run, steps=8, extra=("--ckpt-every", "2", "--log-every", "3"))
    from mimic_fast.cli import build_parser
    from mimic_fast.train.commands import config_from_args

    cfg = config_from_args(build_parser().parse_args(args))
    with pytest.raises(trainer.NonFiniteLoss, match="non-finite at step 5"):
        trainer.train(cfg)
    state = ckpt_io.load(run)
    assert state["step"] == 4  # written after its check passed; step 6 never saved
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert [m["step"] for m in metrics(run)] == [2, 3, 4]
