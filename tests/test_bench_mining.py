"""benchmarks/bench_mining.py's device rows (bench_mining_device.py) and their stage timers
(mining_profile.py): the timers still find the stage functions they wrap, time every stage of
a run and reach the local engine's worker processes; a row that cannot run is reported.
Timings themselves are never asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_mining  # noqa: E402
import bench_mining_device  # noqa: E402
import mining_profile  # noqa: E402


def test_every_hooked_stage_function_exists():
    # a renamed stage function would silently drop out of the profile
    assert mining_profile.missing_hooks() == []


@pytest.mark.slow
def test_serial_run_with_torch_stages_times_every_stage(tmp_path, one_torch_thread):
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.run import mine

    inputs = bench_mining.generate(tmp_path / "in", 2, 6)
    cfg = MineConfig(sift="native", ransac="native")
    with mining_profile.installed_here(), bench_mining_device.torch_stages("cpu"):
        summary = mine(inputs, tmp_path / "out", cfg, RunOptions(workers=1, progress=False))
        rec = mining_profile.record()
    assert summary["candidates"] > 0 and summary["accepted"] > 0
    # the second source's calls are steady ones; the first's are set-up (first calls)
    for stage in ("decode", "sift", "match", "ransac", "overlap", "encode"):
        assert rec["stages"].get(stage, 0) > 0, stage
    assert rec["first_calls_s"] > 0
    assert rec["busy_s"] >= sum(rec["stages"].values()) + rec["first_calls_s"]
    assert rec["units"] == 2 and rec["evaluated"] >= summary["candidates"]
    # uninstalled afterwards: the package's functions are its own again
    from mimic_fast.mining import views

    assert views.read_image.__module__ == "mimic_fast.io.images"


@pytest.mark.slow
def test_device_rows_on_cpu_profile_the_pool_workers(tmp_path):
    out = tmp_path / "rows.json"
    r = subprocess.run(
        [sys.executable, "benchmarks/bench_mining.py", "--device", "cpu", "--sources", "2",
         "--frames", "4", "--workers", "2", "--repeats", "1", "--target-seconds", "0.1",
         "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(out.read_text())
    assert set(result["rows"]) == {"cpu default (baseline)", "cpu, sift opencv",
                                   "cpu, sift native"}
    for name, row in result["rows"].items():
        run = row["median"]
        assert "error" not in row and not run["failed_sources"], name
        assert run["sources"] == 2 and run["candidates"] > 0, name
        p = run["profile"]
        assert p["worker_records"] == 2 and not p["hooks_missing"], name  # both pool workers
        assert p["rows"]["decode"]["worker_s"] > 0, name
        # a torch stage's first call in a worker counts as set-up, not as the stage
        assert p["rows"]["sift"]["worker_s"] + p["rows"]["first calls"]["worker_s"] > 0, name
    assert result["rows"]["cpu, sift native"]["median"]["profile"]["stages_on_device"] == [
        "sift", "match", "ransac", "overlap"]
    assert set(result["goals"]) == {"sift opencv>=1000", "sift native>=5000"}
    assert "goal >= 5,000 cand/s" in r.stdout


@pytest.mark.skipif(__import__("mimic_fast").build_config()["cuda_devices"] > 0,
                    reason="needs a machine without a CUDA GPU")
def test_device_rows_that_cannot_run_are_reported_and_the_rest_written(tmp_path):
    out = tmp_path / "rows.json"
    r = subprocess.run(
        [sys.executable, "benchmarks/bench_mining.py", "--device", "cuda", "--sources", "2",
         "--frames", "4", "--workers", "2", "--repeats", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr  # gpu_check's summary shows the failure
    rows = json.loads(out.read_text())["rows"]
    assert rows["cpu default (baseline)"]["median"]["candidates"] > 0
    for name in ("cuda, sift opencv", "cuda, sift native"):
        assert "no CUDA GPU" in rows[name]["error"]
    assert "FAILED: ValueError: --device cuda: no CUDA GPU is visible" in r.stdout
