"""benchmarks/gpu_check.sh --dry-run: every step it would run on a GPU machine names files
that exist, and the CUDA tests it runs are collected."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_lists_existing_steps_and_cuda_tests():
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT,
                       capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PY=sys.executable))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "MISSING" not in r.stdout
    steps = re.findall(r"^== (\w+) \(timeout", r.stdout, re.M)
    assert {"build", "pytest_cuda", "bench_overlap", "bench_ransac", "bench_attention",
            "mine_cuda", "bench_mining", "train_smoke", "bench_train"} <= set(steps)
    # the GPU mining rows (issues 11 and 12), at the size sized for this call
    assert re.search(r"^== bench_mining .*bench_mining\.py --device cuda --quick$", r.stdout, re.M)
    n = int(re.search(r"pytest -m cuda collects (\d+) tests", r.stdout).group(1))
    assert n >= 10
    # the CPU-vs-CUDA dataset comparison pins the two "auto" stages, which differ by device
    assert re.search(r"^== mine_cuda .*--sift opencv --ransac native", r.stdout, re.M)


def test_gpu_check_only_reruns_the_steps_named_after_env_and_build():
    def dry(only):
        return subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry-run"], cwd=ROOT,
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, PY=sys.executable, ONLY=only))

    r = dry("bench_mining mine_cuda")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.findall(r"^== (\w+) \(timeout", r.stdout, re.M) == [
        "env", "build", "mine_cuda", "bench_mining"]
    assert "pytest -m cuda collects" not in r.stdout  # not a step of this rerun
    r = dry("mine_gpu")
    assert r.returncode == 2 and "no step named mine_gpu" in r.stdout
