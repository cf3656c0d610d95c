"""The run folder: one training run at a time (a lock), checkpoint temporaries of killed runs
swept, a full disk ends with one line and keeps the last good checkpoint, loader workers end
with a killed trainer."""

from __future__ import annotations

import errno
import subprocess
import sys

import torch
from process_tools import kill_leader_and_wait, kill_session, session_members, start_session, wait_until
from run_helpers import run_cli, train_args

from mimic_fast._output_folder import LOCK_NAME
from mimic_fast.train import checkpoint as ckpt_io


def _long_run(data, run, workers: int):
    args = train_args(data, run, steps=100000, extra=("--ckpt-every", "100000"))
    args[args.index("--num-workers") + 1] = str(workers)
    return start_session([sys.executable, "-m", "mimic_fast.cli", *args])


def test_a_second_run_into_a_busy_run_folder_stops_at_once(mined_tum, tmp_path, capsys):
    run = tmp_path / "run"
    first = _long_run(mined_tum, run, workers=0)
    try:
        assert wait_until(lambda: (run / LOCK_NAME).is_file()
                          and str(first.pid) in (run / LOCK_NAME).read_text(), 60)
        assert run_cli(train_args(mined_tum, run, steps=2)) == 3
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and f"pid {first.pid}" in err, err
        assert first.poll() is None  # the first run goes on
    finally:
        kill_session(first.pid)


def test_checkpoint_temporaries_of_dead_runs_are_swept(mined_tum, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    leftovers = [run / f".checkpoint.pt.tmp-{dead}", run / "checkpoints" / f".step-00000002.pt.tmp-{dead}"]
    for p in leftovers:
        p.write_bytes(b"half a checkpoint")
    assert run_cli(train_args(mined_tum, run, steps=2)) == 0
    assert not any(p.exists() for p in leftovers)


def test_disk_full_at_a_checkpoint_is_one_line_and_keeps_the_last_good_one(
        mined_tum, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    assert run_cli(train_args(mined_tum, run, steps=2)) == 0
    good = ckpt_io.load(run / ckpt_io.NAME)["step"]
    real_save = torch.save

    def full(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # bytes went out, then the device filled up
        raise OSError(errno.ENOSPC, "No space left on device", getattr(f, "name", None))
    monkeypatch.setattr(torch, "save", full)
    capsys.readouterr()
    assert run_cli(train_args(mined_tum, run, steps=4)) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left" in err[0], err
    monkeypatch.undo()
    assert ckpt_io.load(run / ckpt_io.NAME)["step"] == good
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]


def test_loader_workers_end_with_a_killed_trainer(mined_tum, tmp_path):
    run = tmp_path / "run"
    trainer = _long_run(mined_tum, run, workers=2)
    try:
        # trainer, forkserver, 2 loader workers (and the resource tracker)
        assert wait_until(lambda: len(session_members(trainer.pid)) >= 4, 90), \
            trainer.stderr.read() if trainer.poll() is not None else session_members(trainer.pid)
        assert wait_until(lambda: (run / "metrics.jsonl").is_file(), 90)  # batches flowing
        left = kill_leader_and_wait(trainer, 5)
        assert not left, f"left running: {left}"
    finally:
        kill_session(trainer.pid)
