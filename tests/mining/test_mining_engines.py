"""Engines: the local process pool and Ray give the serial run's dataset, byte for byte, and
a crash fails only the source that caused it."""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import subprocess
import sys
import types

import pytest

from mimic_fast.io.sources import Source
from mimic_fast.mining import engines, unit_progress
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.engines import run_local, run_ray
from mimic_fast.mining.run import mine
from mimic_fast.mining.worker import SourceTask
from mimic_fast.dataset.schema import manifest_path

from test_mining_resume import dataset_files  # noqa: E402  (tests/mining is on sys.path)


@pytest.fixture
def inputs(scenes_and_tum):
    return scenes_and_tum


@pytest.fixture
def serial(mined_scenes_and_tum):
    return mined_scenes_and_tum


def test_process_pool_matches_serial(inputs, serial, tmp_path):
    out = tmp_path / "pool"
    s = mine(inputs, out, MineConfig(), RunOptions(progress=False, workers=2))
    assert s["workers"] == 2
    assert dataset_files(out) == dataset_files(serial)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray of 2 cores for the module's Ray tests (starting one takes seconds)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_engine_matches_serial(inputs, serial, tmp_path, local_ray):
    out = tmp_path / "ray"
    s = mine(inputs, out, MineConfig(), RunOptions(progress=False, engine="ray"))
    assert s["engine"] == "ray"
    assert dataset_files(out) == dataset_files(serial)


@pytest.mark.slow
def test_ray_stage_server_path_matches_serial(inputs, serial, tmp_path, local_ray, monkeypatch,
                                              caplog):
    """With a torch stage device the tasks send their batches to a stage server actor (here
    on the CPU, num_gpus=0: the code path of one actor per GPU); the dataset is the serial
    CPU run's byte for byte."""
    from mimic_fast.mining import run

    monkeypatch.setattr(run, "resolve_device", lambda d: "cpu")
    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    out = tmp_path / "ray-served"
    mine(inputs, out, MineConfig(), RunOptions(progress=False, engine="ray", device="cuda"))
    assert dataset_files(out) == dataset_files(serial)
    served = [r.getMessage() for r in caplog.records if "stage server 0 on cpu" in r.getMessage()]
    assert len(served) == 1 and re.search(r"'evaluate': [1-9]", served[0]), served


@pytest.fixture(scope="module")
def long_frames(tmp_path_factory):
    """A frame folder of 140 frames: its walk is evaluated in 3 rounds (samplers.CHUNK)."""
    from mimic_fast.mining import synthetic

    frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 140, (120, 160), seed=3)
    return synthetic.write_frames(frames, tmp_path_factory.mktemp("long") / "f")[0].parent


def _long_tasks(folder, out, n):
    out.mkdir()
    return [SourceTask(str(out), i, Source(str(folder), "frames"), MineConfig())
            for i in range(n)]


def _recording_progress(out):
    """on_progress that records (unit index, n, whether the unit's manifest existed then)."""
    seen = []

    def on_progress(unit, n):
        seen.append((unit.index, n, manifest_path(out, unit.index).exists()))

    return seen, on_progress


def _check_progress_within_units(seen, landed, n):
    assert sorted(m["index"] for m in landed) == list(range(n))
    for i in range(n):
        mine_ = [(k, done) for index, k, done in seen if index == i]
        assert any(not done for _, done in mine_), seen  # heard while the unit still ran
        assert all(k > 0 for k, _ in mine_)
        assert sum(k for k, _ in mine_) <= 139  # (i, i+1) evaluated; never counted twice


def test_pool_workers_report_progress_while_their_units_run(long_frames, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(engines, "PROGRESS_EVERY", 0.0)  # a report per round
    out = tmp_path / "ds"
    tasks = _long_tasks(long_frames, out, 2)
    seen, on_progress = _recording_progress(out)
    landed = []
    run_local(tasks, 2, landed.append, on_progress)
    _check_progress_within_units(seen, landed, 2)


@pytest.mark.slow
def test_ray_tasks_report_progress_while_their_units_run(long_frames, tmp_path, monkeypatch,
                                                         local_ray):
    monkeypatch.setattr(engines, "PROGRESS_EVERY", 0.0)
    out = tmp_path / "ds"
    tasks = _long_tasks(long_frames, out, 1)
    seen, on_progress = _recording_progress(out)
    landed = []
    run_ray(tasks, None, landed.append, on_progress=on_progress)
    _check_progress_within_units(seen, landed, 1)


def test_progress_reports_are_never_counted_twice():
    """The driver's book of reports: increases only; nothing after the unit's result; a
    retried attempt or an abandoned submission takes back what it had reported."""
    calls = []
    reports = unit_progress.Reports(lambda unit, n: calls.append((unit, n)))
    a, b = reports.start("A"), reports.start("B")
    reports.report(a, "first", 10)
    reports.report(a, "first", 10)  # nothing new
    reports.report(a, "first", 25)
    reports.report(a, "retry", 5)  # Ray ran the task again: it starts over
    reports.end(a)
    reports.report(a, "retry", 40)  # after the result: the result settled the count
    reports.report(b, "x", 7)
    reports.end(b, abandoned=True)  # its pool broke: the unit runs again elsewhere
    assert calls == [("A", 10), ("A", 15), ("A", -25), ("A", 5), ("B", 7), ("B", -7)]


class _DiesWhenUnpickled(str):
    """A source path that kills the process unpickling it: the worker handed this task dies
    as it would on a decoder segfault (the driver, which only pickles it, is unharmed)."""

    def __reduce__(self):
        return os._exit, (70,)


def _tasks_with_a_killer(root, n, killer):
    """n "frames" tasks over empty folders (each fails fast, in its worker, with a manifest)
    and task ``killer`` whose worker dies."""
    (root / "ds").mkdir()
    tasks = []
    for i in range(n):
        folder = root / f"empty{i}"
        folder.mkdir()
        path = _DiesWhenUnpickled(folder) if i == killer else str(folder)
        tasks.append(SourceTask(str(root / "ds"), i, Source(path, "frames"), MineConfig()))
    return tasks


@pytest.mark.parametrize("n", [4, 2])
def test_a_dying_worker_fails_only_its_own_source(tmp_path, n):
    tasks = _tasks_with_a_killer(tmp_path, n, killer=1)
    landed = []
    run_local(tasks, 2, landed.append)
    assert sorted(m["index"] for m in landed) == list(range(n))  # each exactly once
    for m in landed:
        on_disk = json.loads(manifest_path(tmp_path / "ds", m["index"]).read_text())
        assert on_disk == m and m["status"] == "failed"
        if m["index"] == 1:
            assert m["error"] == "worker process died while mining this source"
        else:  # mined in a worker, not blamed for the crash
            assert m["error"].startswith("fewer than 2 usable frames")


def test_a_script_without_main_guard_is_told_so(tmp_path):
    for folder in ("a", "ds"):
        (tmp_path / folder).mkdir()
    script = tmp_path / "unguarded.py"
    script.write_text(
        "from mimic_fast.io.sources import Source\n"
        "from mimic_fast.mining.config import MineConfig\n"
        "from mimic_fast.mining.engines import run_local\n"
        "from mimic_fast.mining.worker import SourceTask\n"
        f"tasks = [SourceTask({str(tmp_path / 'ds')!r}, i, Source({str(tmp_path / 'a')!r}, "
        "'frames'), MineConfig()) for i in range(2)]\n"
        "run_local(tasks, 2, print)\n")
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0
    assert "RuntimeError: the worker processes could not start" in r.stderr


def _with_fake_ray(monkeypatch, exceptions, get, tmp_path) -> list[SourceTask]:
    """Ray stood in for by ``get(task)`` (what ray.get returns or raises for the task's
    object ref); returns 3 tasks for run_ray."""
    fake = types.SimpleNamespace(
        exceptions=exceptions, is_initialized=lambda: True, get=get, cancel=lambda ref: None,
        remote=lambda **kw: lambda fn: types.SimpleNamespace(remote=lambda task, *_: task),
        wait=lambda pending, num_returns, timeout=None: (pending[:1], pending[1:]),
    )
    monkeypatch.setitem(sys.modules, "ray", fake)
    return [SourceTask(str(tmp_path), i, Source(str(tmp_path / f"s{i}"), "frames"),
                       MineConfig()) for i in range(3)]


@pytest.mark.parametrize("error", ["OutOfMemoryError", "NodeDiedError", "WorkerCrashedError"])
def test_ray_failures_of_any_kind_fail_only_their_source(tmp_path, monkeypatch, error):
    exceptions = pytest.importorskip("ray.exceptions")

    def get(task):  # stands in for ray.get on the task's object ref
        if task.index == 1:
            raise getattr(exceptions, error)("simulated")
        return {"index": task.index, "status": "done"}

    tasks = _with_fake_ray(monkeypatch, exceptions, get, tmp_path)
    landed = []
    run_ray(tasks, None, landed.append)
    assert [(m["index"], m["status"]) for m in landed] == [(0, "done"), (1, "failed"),
                                                           (2, "done")]
    assert landed[1]["error"] == f"Ray task failed: {error}"


def test_ray_disk_full_stops_the_run_instead_of_failing_the_source(tmp_path, monkeypatch):
    exceptions = pytest.importorskip("ray.exceptions")

    class TaskError(exceptions.RayError):  # what ray.get raises for an exception in a task
        def __init__(self, cause):
            super().__init__(str(cause))
            self.cause = cause

    def get(task):
        if task.index == 1:
            raise TaskError(OSError(errno.ENOSPC, "No space left on device", "x.tar"))
        return {"index": task.index, "status": "done"}

    tasks = _with_fake_ray(monkeypatch, exceptions, get, tmp_path)
    landed = []
    with pytest.raises(OSError) as info:
        run_ray(tasks, None, landed.append)
    assert info.value.errno == errno.ENOSPC
    assert all(m["status"] == "done" for m in landed)  # no source recorded as failed


def test_the_pool_forkserver_boots_before_the_run_is_planned(inputs, serial, tmp_path,
                                                             monkeypatch):
    """mine() starts the local pool's forkserver first, so that it imports the mining modules
    while the driver plans; with a stage device it imports torch once for all workers."""
    from multiprocessing import forkserver

    from mimic_fast.mining import chunks, engines

    events = []
    real_start, real_plan = forkserver.ensure_running, chunks.plan_source
    monkeypatch.setattr(forkserver, "ensure_running",
                        lambda: events.append("forkserver") or real_start())
    monkeypatch.setattr(chunks, "plan_source", lambda *a: events.append("plan") or real_plan(*a))
    mine(inputs, tmp_path / "pool", MineConfig(), RunOptions(progress=False, workers=2))
    assert events[0] == "forkserver" and "plan" in events
    assert dataset_files(tmp_path / "pool") == dataset_files(serial)
    events.clear()
    engines.start_pool_early(1)
    assert events == []  # one worker: no pool
    assert "torch" not in engines._worker_modules(None)
    assert "torch" in engines._worker_modules("cuda")  # workers computing on it themselves
    assert "torch" not in engines._worker_modules("cuda", served=True)  # a server does
