"""The local engine's stage servers (one process per GPU serving every pool worker), run on
the CPU: the same code path as with "cuda" (``SERVED_DEVICES`` patched to include "cpu").
The dataset is the serial CPU run's byte for byte; the server really serves; a server that
dies stops the run, never a hang, and the same command continues; it ends with its driver."""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import textwrap
import threading

import numpy as np
import pytest

from mimic_fast._lifeline import process_identity
from mimic_fast.features.sift import Features
from mimic_fast.io.sources import Source
from mimic_fast.mining import engines, stage_service
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine
from mimic_fast.mining.stage_server import pack
from mimic_fast.mining.stage_service import (
    ServerConnection, StageServerGone, StageServers, StageServerUnavailable,
)
from mimic_fast.mining.worker import SourceTask

from process_tools import (
    kill_leader_and_wait, kill_session, session_members, start_session, wait_until,
)
from test_mining_resume import dataset_files  # noqa: E402  (tests/mining is on sys.path)


@pytest.fixture
def cpu_servers(monkeypatch):
    """The local engine starts stage servers for the stage device "cpu" too; mine()'s
    ``--device cuda`` resolves to "cpu"."""
    from mimic_fast.mining import run

    monkeypatch.setattr(stage_service, "SERVED_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(run, "resolve_device", lambda d: None if d == "cpu" else "cpu")


def _served_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage server")]


def test_local_stage_server_path_matches_serial(scenes_and_tum, mined_scenes_and_tum, tmp_path,
                                                cpu_servers, caplog):
    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    out = tmp_path / "served"
    s = mine(scenes_and_tum, out, MineConfig(),
             RunOptions(progress=False, workers=2, device="cuda"))
    assert s["workers"] == 2
    assert dataset_files(out) == dataset_files(mined_scenes_and_tum)
    served = _served_lines(caplog)  # "stage servers: cpu, ..." then the statistics
    assert len(served) == 2 and re.search(
        r"^stage server 0 on cpu: \{'evaluate': [1-9]\d*\} requests in [1-9]\d* batches "
        r"\(largest [1-9]\d* requests\), [1-9]\d* pairs, busy \d+\.\d s of \d+\.\d s "
        r"\(\d+%\)$", served[1]), served


@pytest.mark.slow
def test_native_sift_in_the_local_stage_server_matches_serial(shared_data, tmp_path,
                                                             cpu_servers, caplog):
    """--sift native: the workers' frames go to the server for their SIFT (in batches for its
    device, coalesced across workers); the dataset is the serial run's byte for byte."""
    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    config = MineConfig(sift="native", stride=2)  # 9 TUM frames, in 2 chunks below
    inputs = [shared_data / "video/tum_freiburg_frames"]
    mine(inputs, tmp_path / "serial", config, RunOptions(progress=False))
    summary = mine(inputs, tmp_path / "served", config,
                   RunOptions(progress=False, workers=2, chunk=4, device="cuda"))
    assert summary["accepted"] > 0 and summary["workers"] == 2
    assert dataset_files(tmp_path / "served") == dataset_files(tmp_path / "serial")
    served = _served_lines(caplog)
    assert re.search(r"^stage server 0 on cpu: \{'sift': [1-9]\d*, 'evaluate': [1-9]",
                     served[1]), served


def _has_cuda() -> bool:
    import mimic_fast
    import torch

    return torch.cuda.is_available() and mimic_fast.build_config()["cuda_devices"] > 0


@pytest.mark.cuda
@pytest.mark.skipif(not _has_cuda(), reason="needs a CUDA GPU and a CUDA build")
def test_gpu_stage_servers_mine_the_serial_gpu_dataset(scenes_and_tum, tmp_path, caplog):
    """--device cuda, 2 workers: the stages (and the native SIFT of --sift auto) run in a
    server per GPU; the dataset is that of the serial run, whose stages run in the driver."""
    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    mine(scenes_and_tum, tmp_path / "serial", MineConfig(),
         RunOptions(progress=False, device="cuda"))
    mine(scenes_and_tum, tmp_path / "served", MineConfig(),
         RunOptions(progress=False, workers=2, device="cuda"))
    assert dataset_files(tmp_path / "served") == dataset_files(tmp_path / "serial")
    served = _served_lines(caplog)
    assert served[0].startswith("stage servers: GPU 0"), served
    assert re.search(r"^stage server 0 on cuda: \{'sift': [1-9]\d*, 'evaluate': [1-9]",
                     served[1]), served


@pytest.fixture(scope="module")
def long_folder(tmp_path_factory):
    """140 frames: a unit evaluated in 3 rounds, chunked (4 chunks) by mine()."""
    from mimic_fast.mining import synthetic

    frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 140, (120, 160), seed=3)
    return synthetic.write_frames(frames, tmp_path_factory.mktemp("long") / "f")[0].parent


def test_workers_take_the_servers_in_turn(long_folder, tmp_path, cpu_servers, monkeypatch,
                                          caplog):
    """Two servers (as on a machine with 2 GPUs), two workers: each server serves one."""
    monkeypatch.setattr(stage_service, "_server_plan",
                        lambda device, limit: [("cpu 0", None), ("cpu 1", None)])
    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    (tmp_path / "ds").mkdir()
    tasks = [SourceTask(str(tmp_path / "ds"), i, Source(str(long_folder), "frames"),
                        MineConfig()) for i in range(2)]
    landed = []
    engines.run_local(tasks, 2, landed.append, device="cpu")
    assert [m["status"] for m in landed] == ["done", "done"]
    served = _served_lines(caplog)
    assert served[0] == "stage servers: cpu 0, cpu 1, for 2 workers", served
    for k in (0, 1):
        assert any(re.search(rf"^stage server {k} on cpu: \{{'evaluate': [1-9]", line)
                   for line in served), served


def test_a_killed_server_stops_the_run_and_the_same_command_continues(long_folder, tmp_path,
                                                                        cpu_servers,
                                                                        monkeypatch, caplog):
    """The server is killed while the workers use it (after its first request): the run
    stops with StageServerGone (a hang fails the test at the join), recording no source as
    failed (a plain rerun would skip it: its pairs lost); the same command then mines the
    dataset an uninterrupted run gives."""
    started: list[StageServers] = []

    class KilledAfterFirstRequest(StageServers):
        def __init__(self, *args):
            super().__init__(*args)
            started.append(self)
            threading.Thread(target=self._kill_when_used, daemon=True).start()

        def _kill_when_used(self):
            probe = ServerConnection(self.endpoints[0])
            wait_until(lambda: probe.stats()["requests"].get("evaluate", 0) > 0, 120, 0.02)
            os.kill(self.pids()[0], signal.SIGKILL)

    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    options = RunOptions(progress=False, workers=2, device="cuda")
    raised: list = []

    def first_run():
        try:
            mine([long_folder], tmp_path / "ds", MineConfig(), options)
        except BaseException as exc:  # noqa: BLE001 (checked below)
            raised.append(exc)

    with monkeypatch.context() as patch:
        patch.setattr(stage_service, "StageServers", KilledAfterFirstRequest)
        run = threading.Thread(target=first_run, daemon=True)
        run.start()
        run.join(240)
    assert not run.is_alive(), "the run hung after its stage server died"
    assert len(started) == 1 and started[0].exit_codes() == [-signal.SIGKILL]
    assert len(raised) == 1 and isinstance(raised[0], StageServerGone), raised
    assert not list((tmp_path / "ds" / "_done").glob("source-*.json"))  # none failed
    summary = mine([long_folder], tmp_path / "ds", MineConfig(), options)
    assert summary["sources_failed"] == 0 and summary["accepted"] > 0
    mine([long_folder], tmp_path / "serial", MineConfig(), RunOptions(progress=False))
    assert dataset_files(tmp_path / "ds") == dataset_files(tmp_path / "serial")


def test_a_dying_worker_fails_only_its_own_source_with_servers(tmp_path, cpu_servers,
                                                              shared_data, caplog):
    """A worker that dies breaks its pool; the units in flight run again one by one in fresh
    pools, whose workers reach the same server (the run's servers outlive its pools)."""
    from test_mining_engines import _DiesWhenUnpickled

    started: list[StageServers] = []

    class Recorded(StageServers):
        def __init__(self, *args):
            super().__init__(*args)
            started.append(self)

    caplog.set_level(logging.INFO, logger="mimic_fast.mining.engines")
    tum = str(shared_data / "video/tum_freiburg_frames")
    (tmp_path / "ds").mkdir()
    tasks = [SourceTask(str(tmp_path / "ds"), i,
                        Source(_DiesWhenUnpickled(tum) if i == 1 else tum, "frames"),
                        MineConfig()) for i in range(4)]
    landed = []
    with pytest.MonkeyPatch.context() as m:
        m.setattr(stage_service, "StageServers", Recorded)
        engines.run_local(tasks, 2, landed.append, device="cpu")
    assert sorted((m["index"], m["status"]) for m in landed) == [
        (0, "done"), (1, "failed"), (2, "done"), (3, "done")]
    assert landed[[m["index"] for m in landed].index(1)]["error"] == \
        "worker process died while mining this source"
    assert len(started) == 1 and started[0].exit_codes() == [-signal.SIGTERM]  # closed at the end
    served = _served_lines(caplog)  # 3 sources of 17 frames: evaluated in 3 requests or more
    assert re.search(r"^stage server 0 on cpu: \{'evaluate': ([3-9]|\d\d)\}", served[1]), served


@pytest.fixture(scope="module")
def cpu_server():
    with StageServers(engines._pool_context("cpu"), "cpu", 1, process_identity()) as servers:
        yield servers


def test_exceptions_in_the_server_are_raised_in_the_caller(cpu_server):
    connection = ServerConnection(cpu_server.endpoints[0])
    with pytest.raises(ValueError, match=r"gray must be uint8 \[B, H, W\] frames, got float32"):
        connection.sift(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="the stage server has no method 'close'"):
        connection._call("close", ())
    view = pack(Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32)))
    with pytest.raises(IndexError) as info:  # raised in the server's stages, in a batch
        connection.evaluate([view], np.array([[0, 1]]), MineConfig())
    assert "in the stage server:" in info.value.__notes__[0]
    assert connection.stats()["requests"] == {"evaluate": 1}  # the connection still works
    connection.close()


def test_an_exception_that_does_not_pickle_travels_as_a_runtime_error():
    class Unpicklable(Exception):
        def __init__(self, a, b):  # pickling calls Unpicklable(*args) with one argument
            super().__init__(f"{a}/{b}")

    try:
        raise Unpicklable(1, 2)
    except Unpicklable as exc:
        portable = stage_service._portable(exc)
    assert type(portable) is RuntimeError and str(portable) == "Unpicklable: 1/2"
    assert "in the stage server:" in portable.__notes__[0]
    ok = stage_service._portable(ValueError("x"))
    assert type(ok) is ValueError and ok.__notes__[0].startswith("in the stage server:")


def test_a_server_that_is_gone_raises_at_once():
    with StageServers(engines._pool_context("cpu"), "cpu", 1, process_identity()) as servers:
        connection = ServerConnection(servers.endpoints[0])
        assert connection.stats()["batches"] == 0
    with pytest.raises(StageServerGone, match=r"the stage server \(cpu\) is gone \("):
        connection.stats()  # its connection was open: closed under it
    with pytest.raises(StageServerGone, match=r"the stage server \(cpu\) is gone \(Connection"):
        connection.stats()  # a new connection: refused
    assert servers.stats() == [None]


def test_a_server_that_cannot_start_is_one_line():
    with pytest.raises(StageServerUnavailable) as info:
        StageServers(engines._pool_context("cpu"), "bogus", 1, process_identity())
    message = str(info.value)
    assert message.startswith("--device bogus: the stage server for bogus could not start: "
                              "RuntimeError: "), message
    assert "\n" not in message and isinstance(info.value, ValueError)  # the CLI: one line


def test_the_command_line_reports_a_server_that_cannot_start_in_one_line(
        scenes_and_tum, tmp_path, monkeypatch, capsys):
    from mimic_fast.cli import main
    from mimic_fast.mining import run

    monkeypatch.setattr(stage_service, "SERVED_DEVICES", ("cuda", "bogus"))
    monkeypatch.setattr(run, "resolve_device", lambda d: "bogus")  # a device torch refuses
    code = main(["mine", *map(str, scenes_and_tum), "--out", str(tmp_path / "ds"),
                 "--workers", "2", "--device", "cuda", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("mimic-fast mine: error: --device bogus: the stage "
                                        "server for bogus could not start: RuntimeError: ")
    assert err.count("\n") == 1 and "Traceback" not in err, err


def test_one_server_per_gpu_each_pinned_to_its_gpu(monkeypatch):
    monkeypatch.setattr(stage_service, "_gpu_count", lambda: 4)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    plan = stage_service._server_plan
    assert plan("cuda", 16) == [("GPU 0", "0"), ("GPU 1", "1"), ("GPU 2", "2"), ("GPU 3", "3")]
    assert plan("cuda", 2) == [("GPU 0", "0"), ("GPU 1", "1")]  # never more than workers
    assert plan("cuda:2", 16) == [("GPU 2", "2")]
    assert plan("cpu", 16) == [("cpu", None)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5, 7,GPU-0a1b")  # this process's own list
    assert plan("cuda", 2) == [("GPU 0", "5"), ("GPU 1", "7")]
    assert stage_service._visible_gpu(2) == "GPU-0a1b"
    assert not stage_service.served(None) and stage_service.served("cuda:1")
    assert not stage_service.served("cpu")  # the CPU runs its stages in the workers
    assert not stage_service.served("cuda", decoder="dali")


@pytest.mark.parametrize("device, decoder", [(None, "opencv"), ("cpu", "dali")])
def test_no_server_for_the_cpu_default_nor_dali(tmp_path, cpu_servers, monkeypatch, device,
                                                decoder):
    """The CPU default runs as before; with --decoder dali the workers hold the GPU for
    their decoder anyway (nvJPEG with --device cuda) and keep their stages."""
    def refuse(*args):
        raise AssertionError("a stage server was started")

    monkeypatch.setattr(stage_service, "StageServers", refuse)
    (tmp_path / "ds").mkdir()
    tasks = [SourceTask(str(tmp_path / "ds"), i, Source(str(tmp_path / "ds"), "frames"),
                        MineConfig(decoder=decoder)) for i in range(2)]
    landed = []
    engines.run_local(tasks, 2, landed.append, device=device)
    assert sorted(m["index"] for m in landed) == [0, 1]
    assert stage_service.served("cpu")  # (the patched setting: "cpu" is served otherwise)


def test_a_server_ends_with_a_killed_driver(long_folder, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(f"""
        from mimic_fast.io.sources import Source
        from mimic_fast.mining import engines, stage_service
        from mimic_fast.mining.config import MineConfig
        from mimic_fast.mining.worker import SourceTask
        if __name__ == "__main__":
            stage_service.SERVED_DEVICES = ("cpu",)
            tasks = [SourceTask({str(tmp_path)!r}, i, Source({str(long_folder)!r}, "frames"),
                                MineConfig()) for i in range(4)]
            engines.run_local(tasks, 2, print, device="cpu")
    """))
    driver = start_session([sys.executable, str(script)], cwd=tmp_path)
    try:
        # the driver, the resource tracker, the forkserver, the server and 2 workers
        assert wait_until(lambda: driver.poll() is not None
                          or len(session_members(driver.pid)) >= 6, 120) \
            and driver.poll() is None, \
            driver.stderr.read() if driver.poll() is not None else session_members(driver.pid)
        left = kill_leader_and_wait(driver, 10)
        assert not left, f"left running: {left}"
    finally:
        kill_session(driver.pid)


def test_the_command_line_says_in_one_line_that_a_gone_server_stopped_the_run(
        tmp_path, monkeypatch, capsys):
    from mimic_fast import cli
    from mimic_fast.mining import run

    def gone(*args, **kwargs):
        raise StageServerGone("the stage server (GPU 0) is gone (EOFError)")

    monkeypatch.setattr(run, "mine", gone)
    assert cli.main(["mine", str(tmp_path), "--out", str(tmp_path / "ds")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mimic-fast mine: error: the stage server (GPU 0) is gone (EOFError): mining "
                   "stopped; what landed is kept, and the same command continues"]


def test_a_ray_stage_server_actor_that_is_gone_raises_stage_server_gone(monkeypatch):
    """Under Ray, a task's call into a stage-server actor that died for good raises
    StageServerGone, which stops the run like a local server's (not a failed source)."""
    exceptions = pytest.importorskip("ray.exceptions")
    import ray

    from mimic_fast.mining.stage_server import StageClient
    from mimic_fast.mining.worker import stops_the_run

    class DeadActorMethod:
        def remote(self, *args):
            return "ref"

    def get(ref):
        raise exceptions.RayActorError()

    monkeypatch.setattr(ray, "get", get)
    client = StageClient(type("Actor", (), {"sift": DeadActorMethod()})(), "cuda")
    with pytest.raises(StageServerGone, match="actor is gone") as info:
        client.sift(np.zeros((1, 8, 8), np.uint8))
    assert stops_the_run(info.value)
