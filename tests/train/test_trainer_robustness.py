"""Resume and bookkeeping edge cases: a half-written metrics line, other data behind the same
path, exact streaming resume after unreadable samples, atomic kept checkpoints, eval workers."""

from __future__ import annotations

import json
import shutil

import pytest
from run_helpers import losses, metrics, run_cli, train_args
from shard_tools import read_members, write_tar

from mimic_fast.train import checkpoint as ckpt_io
from mimic_fast.train import trainer
from mimic_fast.train.metrics import MetricsLog


def test_a_half_written_metrics_line_does_not_block_resume(tmp_path):
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in (1, 2, 3, 4)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:9])
    MetricsLog(tmp_path, start_step=2, enabled=True).close()
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    (tmp_path / "metrics.jsonl").write_text(lines[0] + "\n" + lines[1][:5] + "\n" + lines[2] + "\n")
    MetricsLog(tmp_path, start_step=9, enabled=True).close()  # cut at the first bad line
    assert (tmp_path / "metrics.jsonl").read_text() == lines[0] + "\n"


def test_resume_on_other_data_is_refused_but_a_moved_dataset_is_fine(mined_tum, tmp_path, capsys):
    data = shutil.copytree(mined_tum, tmp_path / "data")
    run = tmp_path / "run"
    assert run_cli(train_args(data, run, steps=2)) == 0
    moved = data.rename(tmp_path / "moved")
    assert run_cli(train_args(moved, run, steps=3)) == 0  # same content, new place: resumes
    assert ckpt_io.load(run)["step"] == 3
    shard = next(moved.glob("*.tar"))
    write_tar(shard, read_members(shard)[3:])  # other data under the same names (one sample less)
    capsys.readouterr()
    assert run_cli(train_args(moved, run, steps=4)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not the one run" in err
    assert ckpt_io.load(run)["step"] == 3


def _corrupt_views(dataset, out, samples=(1, 3)):
    data = shutil.copytree(dataset, out)
    shard = next(data.glob("*.tar"))
    members = read_members(shard)
    for k in samples:
        name, payload = members[3 * k]
        members[3 * k] = (name, payload[:300])  # a truncated JPEG
    write_tar(shard, members)
    return data


def test_streaming_resume_after_unreadable_samples_equals_uninterrupted(mined_tum, tmp_path):
    data = _corrupt_views(mined_tum, tmp_path / "data")
    common = ("--streaming", "--batch-size", "2", "--ckpt-every", "2", "--schedule-steps", "8")
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert run_cli(train_args(data, straight, steps=8, extra=common)) == 0
    assert run_cli(train_args(data, split, steps=4, extra=common)) == 0
    state = ckpt_io.load(split)
    assert state["data"]["reader"] == "stream" and state["data"]["stream_pos"][0][0] > 8
    assert run_cli(train_args(data, split, steps=8, extra=common)) == 0
    assert metrics(straight)[-1]["skipped"] >= 2
    assert losses(split) == losses(straight)


def test_kept_checkpoint_copies_are_atomic(tmp_path, monkeypatch):
    src, dst = tmp_path / "checkpoint.pt", tmp_path / "checkpoints" / "step-00000002.pt"
    src.write_bytes(b"new" * 1000)
    trainer._keep_copy(src, dst)
    assert dst.read_bytes() == src.read_bytes()
    src.write_bytes(b"newer" * 1000)

    def broken(fsrc, fdst, length=0):
        fdst.write(fsrc.read(10))
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfileobj", broken)
    with pytest.raises(OSError, match="disk full"):
        trainer._keep_copy(src, dst)
    assert dst.read_bytes() == b"new" * 1000  # the old copy is untouched, no partial file
    assert [p.name for p in dst.parent.iterdir()] == [dst.name]


def test_eval_workers_start_with_forkserver(mined_tum, tmp_path, monkeypatch):
    import torch.utils.data

    from mimic_fast.train.evaluate import evaluate

    run = tmp_path / "run"
    assert run_cli(train_args(mined_tum, run, steps=1)) == 0
    seen = []
    real = torch.utils.data.DataLoader.__init__

    def spy(self, *args, **kwargs):
        seen.append(kwargs.get("multiprocessing_context"))
        real(self, *args, **kwargs)

    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", spy)
    result = evaluate(run, batch_size=2, max_pairs=2, out=tmp_path / "eval", num_workers=1)
    assert result["pairs"] == 2 and seen == ["forkserver"]


def test_compiled_model_saves_the_raw_state_dict(mined_tum, tmp_path, monkeypatch):
    import torch

    compiled = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: compiled.append(m) or m)
    run = tmp_path / "run"
    assert run_cli(train_args(mined_tum, run, steps=1, extra=("--compile",))) == 0
    assert len(compiled) == 1 and not any(k.startswith(("_orig_mod.", "module."))
                                          for k in ckpt_io.load(run)["model"])
