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


def test_served_flag_needs_the_device_rows():
    r = subprocess.run([sys.executable, "benchmarks/bench_mining.py", "--served"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--served need --device" in r.stderr


# A served run of the device rows: 2 pool workers and a stage server on the CPU (as --device
# cuda runs them on the GPU), profiled from the bench's forkserver, in a fresh process (the
# profiled forkserver must be the first one it starts).
_SERVED_RUN = """
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, "benchmarks")
import bench_mining, bench_mining_device as dev, mining_profile
from mimic_fast.io.sources import discover
from mimic_fast.mining.config import MineConfig, RunOptions

tmp = Path(tempfile.mkdtemp())
stages = tmp / "stages"
stages.mkdir()
inputs = bench_mining.generate(tmp / "in", 3, 8)
with dev.torch_stages("cpu", served=True):
    mining_profile.start_profiled_forkserver(stages, "cpu")
mining_profile.install()
cfg = MineConfig(ransac="native", sift="native")
run = dev.profiled_run(inputs, len(discover(inputs, cfg.kind)[0]), tmp / "out", cfg,
                       RunOptions(workers=2, device="cpu", progress=False), "cpu", 600.0,
                       stages, served=True)
dev.print_stages("cpu, sift native", run, "cpu")
print("RESULT " + json.dumps(run, default=str))
"""


@pytest.mark.slow
def test_served_run_times_the_waits_in_the_workers_and_the_server_apart(tmp_path):
    r = subprocess.run([sys.executable, "-c", _SERVED_RUN], cwd=ROOT, capture_output=True,
                       text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    run = json.loads(r.stdout.split("RESULT ", 1)[1])
    assert run["sources"] == 3 and not run["failed_sources"] and run["candidates"] > 0
    p = run["profile"]
    # the workers: two records, their waits on the server timed (every call counted), none of
    # the server's stages in them
    assert p["worker_records"] == 2 and not p["hooks_missing"]
    assert p["served_stages"] == ["evaluate (server)", "sift (server)"]
    for k in p["served_stages"]:
        assert p["rows"][k]["calls"] > 2, k  # a first call each (set-up), and steady ones
    for k in ("sift", "match", "ransac", "overlap"):
        assert p["rows"][k]["worker_s"] == 0, k
    assert p["rows"]["decode"]["worker_s"] > 0
    # the server: its own record, apart from the workers', with its stages and batches
    (server,) = p["servers"]
    assert server["device"] == "cpu" and server["start_up_s"] > 0 and not server["hooks_missing"]
    assert server["batches"] >= 2 and server["busy_s"] > 0 and 0 < server["busy_share"] <= 1
    assert set(server["requests"]) == {"sift", "evaluate"}
    assert server["items"]["evaluate"] >= run["candidates"]
    for k in ("sift", "match", "ransac", "overlap"):  # beyond each stage's first call
        assert server["rows"][k]["seconds"] > 0, k
    assert server["rows"]["first calls"]["seconds"] > 0
    # the engine's own statistics, caught in the driver, agree with the server's record
    (engine,) = p["engine_server_stats"]
    (stats,) = engine["stats"]
    assert stats["requests"] == server["requests"] and stats["items"] == server["items"]
    assert stats["batches"] == server["batches"]
    assert p["bound_by"] in ("server", "workers", "server round trips")
    assert "stage server cpu (cpu): start-up" in r.stdout and "bound: " in r.stdout


def _profile(rows: dict, served: list, servers: list, own: float = 100.0) -> dict:
    return {"rows": {k: {"worker_s": v} for k, v in rows.items()}, "served_stages": served,
            "servers": servers, "workers_own_work_candidates_per_s": own}


def _server(share: float, rate: float = 500.0) -> dict:
    return {"busy_share": share, "candidates_per_s_busy": rate}


def test_the_bound_is_the_server_when_it_is_busy_nearly_all_the_time():
    stages = {"decode": 1.0, "sift": 6.0, "encode": 0.2, "other": 0.5, "evaluate (server)": 4.0,
              "idle": 30.0, "first calls": 9.0}
    served = ["evaluate (server)"]
    busy = bench_mining_device.bound_verdict(_profile(stages, served, [_server(0.95)]))
    assert busy["bound_by"] == "server" and "95%" in busy["bound"]
    assert "500 cand/s" in busy["bound_text"] and "100 cand/s" in busy["bound_text"]
    # the same workers with a server busy 40% of the time: their SIFT (idle, set-up aside)
    spare = bench_mining_device.bound_verdict(_profile(stages, served, [_server(0.4)]))
    assert spare["bound_by"] == "workers" and spare["bound"].startswith("the workers' sift")
    assert abs(spare["bound_stage_share_of_workers"] - 6.0 / 11.7) < 1e-9
    # waiting on a server that is mostly idle: round trips
    waits = {**stages, "evaluate (server)": 8.0}
    trips = bench_mining_device.bound_verdict(_profile(waits, served, [_server(0.4)]))
    assert trips["bound_by"] == "server round trips" and "40%" in trips["bound"]
    # no server (the CPU default, or the torch stages in every worker)
    alone = bench_mining_device.bound_verdict(_profile({"sift": 2.0, "match": 3.0}, [], []))
    assert alone["bound_by"] == "workers" and "match" in alone["bound"]
