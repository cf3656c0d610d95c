"""DDP (torchrun, 2 processes, gloo) gives the losses of one process with the same global
batch; gradient accumulation gives those of one bigger batch."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from run_helpers import losses, run_cli, train_args


def test_ddp_two_processes_equal_one_process(mined_tum, tmp_path):
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    assert run_cli(train_args(mined_tum, single, steps=4, batch=4)) == 0
    args = train_args(mined_tum, ddp, steps=4, batch=2)[1:]  # drop the "train" command word
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "mimic_fast.train", *args],
        env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 1 of 2 (gloo" in proc.stderr
    np.testing.assert_allclose(losses(ddp), losses(single), rtol=1e-5)


def test_accumulation_equals_one_big_batch(mined_tum, tmp_path):
    big, accum = tmp_path / "big", tmp_path / "accum"
    assert run_cli(train_args(mined_tum, big, steps=3, batch=4)) == 0
    assert run_cli(train_args(mined_tum, accum, steps=3, batch=2, extra=("--accum", "2"))) == 0
    np.testing.assert_allclose(losses(accum), losses(big), rtol=1e-5)
