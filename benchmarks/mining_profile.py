"""Per-stage timers for `mimic_fast.mining.run.mine`, in the driver (a serial run) and in every
local-engine worker process, used by bench_mining.py.

The timers wrap the stage functions where mining looks them up (a module's global, or
mimic_fast's public attribute), by names that stay put while the stages are refactored
(:data:`STAGE_HOOKS`; tests/test_bench_mining.py checks that they all exist). Only the
outermost timed call counts, so a stage calling another is not counted twice. When the stage
device is CUDA, a torch stage's timer ends with ``torch.cuda.synchronize()``: mining copies every
GPU result to the host on its next line anyway, so this moves waiting into the stage it
belongs to without adding any. ``init_worker`` is timed too (start-up), and with a stage
device it also imports torch and makes the CUDA context, which the first unit would do.

Workers: :func:`start_profiled_forkserver` starts the local engine's forkserver (before
anything else does, `mine` included: it only boots one that is not running) with this module
and the engine's own preload (torch for a stage device) imported and the timers installed, so
every pool worker forked from it has them, whatever the engine's own initializer does; each
worker leaves its record in ``$BENCH_MINING_STAGES/<pid>.json`` when it exits
(:func:`collect`). One forkserver serves every run of the process, so it preloads for the
stage device (torch in a CPU-default run's workers costs nothing: they never touch it).

Stage servers (the local engine with a CUDA stage device, :mod:`mimic_fast.mining.stage_service`):
the workers then send matching, RANSAC, overlap and the native SIFT to a server process and
wait; those waits are stages of their own in the workers' records ("evaluate (server)",
"sift (server)": transport, queueing and the server's batch). The server is forked from the
same forkserver, so it has the timers too: its batches (``StageServer._run``: busy time,
requests, items) and the stages inside them are timed there, and it leaves its own record
(``role: "server"``, ``server-<pid>.json``) when the driver terminates it (SIGTERM, after the
run). In the driver, the engine's end-of-run statistics of its servers are kept
(:data:`server_stats`).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ENV = "BENCH_MINING_STAGES"  # folder for the workers' records
_INSTALL_ENV = "BENCH_MINING_STAGES_INSTALL"  # set only while the forkserver starts
STAGES = ("decode", "sift", "match", "ransac", "overlap", "encode")
# a worker waiting on its stage server (round trip: transport, queue, the server's batch)
SERVED_STAGES = ("evaluate (server)", "sift (server)")

# (module, attribute (Class.method for a method), stage, kind). Kinds: "torch" runs on the
# stage device when one is set (its first call in a process is set-up: imports, kernels);
# "served" waits on the stage server (its first call waits on the server's set-up); "" the
# rest. Generators (video decoding) are timed frame by frame.
STAGE_HOOKS = (
    ("mimic_fast.mining.views", "read_image", "decode", ""),
    ("mimic_fast.mining.views", "sample_video", "decode", ""),
    ("mimic_fast.mining.views", "decode_span", "decode", ""),
    ("mimic_fast.mining.views", "sift_rgb", "sift", ""),  # OpenCV's, per view
    ("mimic_fast", "sift", "sift", "torch"),  # native, batched
    ("mimic_fast.mining.evaluate", "ratio_match", "match", ""),  # OpenCV's, per pair
    ("mimic_fast.features.batched_matching", "pad_descriptors", "match", ""),
    ("mimic_fast.features.batched_matching", "match_descriptors", "match", "torch"),
    ("mimic_fast.mining.evaluate", "ransac_homography", "ransac", ""),  # OpenCV's, per pair
    ("mimic_fast.geometry.ransac", "pad_matches", "ransac", ""),
    ("mimic_fast", "find_homographies", "ransac", "torch"),  # native, batched
    ("mimic_fast", "patch_overlap", "overlap", "torch"),
    ("mimic_fast.mining.sample", "encode_jpeg", "encode", ""),  # accepted pairs' JPEGs
    ("mimic_fast.mining.stage_server", "StageClient.evaluate", "evaluate (server)", "served"),
    ("mimic_fast.mining.stage_server", "StageClient.sift", "sift (server)", "served"),
)
GENERATORS = {"sample_video", "decode_span"}
# a unit of work (a whole source, a chunk): the worker's busy time
UNIT_HOOKS = (("mimic_fast.mining.worker", "process_source"),
              ("mimic_fast.mining.chunks", "run_chunk"))
# evaluate(pairs, cfg): candidates evaluated (a few more than the dataset's: the walk
# evaluates (i, i+1) and (i, i+2) ahead of its verdicts and skips some)
COUNT_HOOK = ("mimic_fast.mining.samplers", "evaluate")
INIT_HOOKS = (("mimic_fast.mining.worker", "init_worker"),
              ("mimic_fast.mining.engines", "init_worker"))  # the engines' copy, if any
# a stage server process (its whole life; forked from the forkserver) and its batches
SERVE_HOOK = ("mimic_fast.mining.stage_service", "_serve")
BATCH_HOOK = ("mimic_fast.mining.stage_server", "StageServer._run")
# in the driver: the engine's end-of-run statistics of its stage servers
SERVER_STATS_HOOK = ("mimic_fast.mining.engines", "_log_server_stats")
# --sift native: a worker's first SIFT batch imports the native SIFT's module (and torch),
# also when its stage server runs the SIFT (views.features_batch): set-up, as first calls
NATIVE_SIFT_HOOK = ("mimic_fast.mining.views", "features_batch")
NATIVE_SIFT_MODULE = "mimic_fast.features.batched_sift"

_record: dict = {}
_installed: dict = {}  # (module, name) -> original (or _ABSENT)
_ABSENT = object()
_inside = [False]
_called: set = set()  # torch entry points this process has called with a stage device set
_server_device = [None]  # in a stage server: its device (it has no stage setting of its own)
# driver: what the engine logged of its stage servers at the end of each run since cleared:
# {"stats": [StageServer.stats() or None per server], "exit_codes": [...], "seconds": s}
server_stats: list[dict] = []


def reset() -> None:
    _record.clear()
    _record.update(stages=defaultdict(float), init_s=0.0, first_calls_s=0.0, busy_s=0.0,
                   units=0, evaluated=0, pid=os.getpid(), role="worker",
                   calls=defaultdict(int))


reset()


def record() -> dict:
    return {**_record, "stages": dict(_record["stages"]), "calls": dict(_record["calls"]),
            **{k: dict(_record[k]) for k in ("requests", "items") if k in _record},
            "missing": missing_hooks(False)}


def missing_hooks(import_all: bool = True) -> list[str]:
    """The hooked names that do not exist (renamed: the profile would miss them); without
    import_all, only in modules already imported."""
    out = []
    for module, name, *_ in (STAGE_HOOKS + UNIT_HOOKS + (COUNT_HOOK,) + INIT_HOOKS[:1]
                             + (SERVE_HOOK, BATCH_HOOK, SERVER_STATS_HOOK,
                                NATIVE_SIFT_HOOK)):
        if not import_all and _target(module, name) not in sys.modules:
            continue
        owner, attr = _owner(importlib.import_module(module), name)
        if owner is None or not hasattr(owner, attr):
            out.append(f"{module}.{name}")
    return out


def install() -> None:
    """Wrap the stage functions in this process. Stages in modules not imported yet (the
    torch ones: a CPU-default run never imports torch, and importing it costs seconds) are
    wrapped when init_worker sets a stage device."""
    for module in ("mimic_fast.mining.worker", "mimic_fast.mining.chunks",
                   "mimic_fast.mining.engines"):  # and with them the stages' modules
        importlib.import_module(module)
    for module, name, stage, kind in STAGE_HOOKS:
        if _target(module, name) in sys.modules:
            _wrap(module, name, _stage_timer(stage, kind, name in GENERATORS))
    for module, name in UNIT_HOOKS:
        _wrap(module, name, _unit_timer)
    _wrap(*COUNT_HOOK, _counter)
    for module, name in INIT_HOOKS:
        _wrap(module, name, _init_timer)
    _wrap(*SERVE_HOOK, _serve_timer)
    _wrap(*BATCH_HOOK, _batch_timer)
    _wrap(*SERVER_STATS_HOOK, _stats_keeper)
    _wrap(*NATIVE_SIFT_HOOK, _native_sift_import)


def _install_torch_stages() -> None:
    """Wrap the torch stages (imported now: a process only imports torch once it needs it)."""
    import torch  # noqa: F401

    import mimic_fast.features.batched_matching  # noqa: F401
    import mimic_fast.features.batched_sift  # noqa: F401

    install()


def uninstall() -> None:
    for (module, name), fn in reversed(list(_installed.items())):
        owner, attr = _owner(sys.modules[module], name)
        if fn is _ABSENT:
            delattr(owner, attr)
        else:
            setattr(owner, attr, fn)
    _installed.clear()


@contextmanager
def installed_here():
    """The timers in this process (a serial run) while it lasts, from a fresh record."""
    install()
    reset()
    try:
        yield
    finally:
        uninstall()


def start_profiled_forkserver(folder: Path, device: str | None) -> None:
    """Start the local engine's forkserver with the timers installed and what the engine
    itself preloads for a run on ``device`` (torch for a stage device); its pool workers
    write their records into ``folder``. RuntimeError if it is already running (the workers
    would have no timers)."""
    from multiprocessing import forkserver

    if getattr(forkserver._forkserver, "_forkserver_pid", None) is not None:
        raise RuntimeError("the forkserver already runs without the stage timers")
    os.environ[ENV] = str(folder)  # stays: the workers read it when they exit
    saved = os.environ.get("PYTHONPATH")
    # the forkserver does not apply the driver's sys.path before its preload imports
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).resolve().parent)] + ([saved] if saved else []))
    os.environ[_INSTALL_ENV] = "1"
    try:
        forkserver.set_forkserver_preload([__name__] + _engine_preload(device))
        forkserver.ensure_running()
    finally:
        del os.environ[_INSTALL_ENV]
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


def _engine_preload(device: str | None) -> list[str]:
    """The modules the local engine has its forkserver import for a run on ``device``."""
    from mimic_fast.mining import engines

    from mimic_fast.mining import stage_service

    modules = getattr(engines, "_worker_modules", None)
    if modules is None:  # the engine's way changed: at least what it did when written
        return ["torch"] if device is not None else []
    served = device is not None and stage_service.served(device)  # the default decoder
    return list(modules(device, served))


def collect(folder: Path) -> list[dict]:
    """The records of the pool workers and stage servers (``role``) that exited since the last
    call (files removed)."""
    files = sorted(folder.glob("*.json"))
    out = [json.loads(p.read_text()) for p in files]
    for p in files:
        p.unlink()
    return out


def _worker_started() -> None:  # in each process the forkserver forks
    from multiprocessing import util

    reset()
    util.Finalize(None, _dump, exitpriority=10)


def _dump() -> None:
    folder = os.environ.get(ENV)
    server = _record["role"] == "server"
    if folder and (server or _record["units"] or _record["init_s"]):
        if server:  # its serving time: from ready to now; active: first batch to last reply
            now = time.perf_counter()
            _record["window_s"] = now - _record.get("ready_at", now)
            first, last = _record["first_batch_at"], _record["last_reply_at"]
            _record["active_s"] = last - first if first is not None else 0.0
            # CPU seconds while serving (all its threads: the connections' unpickling too)
            _record["cpu_s"] = time.process_time() - _record.get("cpu_at_ready", 0.0)
        name = f"server-{os.getpid()}" if server else str(os.getpid())
        (Path(folder) / f"{name}.json").write_text(json.dumps(record(), default=str))


def _target(module: str, name: str) -> str:
    """The module defining ``module.name`` (mimic_fast's torch entry points are lazy)."""
    if module == "mimic_fast":
        import mimic_fast

        return getattr(mimic_fast, "_LAZY", {}).get(name, module)
    return module


def _owner(mod, name: str):
    """(the object holding ``name``'s last part, that part): the module, or the class of a
    "Class.method" name (None if the class is gone)."""
    *path, attr = name.split(".")
    owner = mod
    for part in path:
        owner = getattr(owner, part, None)
    return owner, attr


def _wrap(module_name: str, name: str, make) -> None:
    if (module_name, name) in _installed:
        return
    owner, attr = _owner(importlib.import_module(module_name), name)
    if owner is None or not hasattr(owner, attr):
        return  # reported by record()["missing"]
    fn = getattr(owner, attr)
    _installed[(module_name, name)] = vars(owner).get(attr, _ABSENT)  # lazy: absent
    setattr(owner, attr, make(fn))


def _stage_device():
    if _server_device[0] is not None:
        return _server_device[0]
    from mimic_fast.mining.device import stage_device

    return stage_device()


def _stage_timer(stage: str, kind: str, generator: bool):
    def make(fn):
        key = (fn.__module__, fn.__qualname__)

        if generator:
            def timed_frames(*a, **k):
                it = iter(fn(*a, **k))
                try:
                    while True:
                        t = time.perf_counter()
                        try:
                            item = next(it)
                        except StopIteration:
                            return
                        finally:
                            _record["stages"][stage] += time.perf_counter() - t
                        yield item
                finally:
                    close = getattr(it, "close", None)
                    if close:
                        close()
            return timed_frames

        def timed(*a, **k):
            if _inside[0]:
                return fn(*a, **k)
            _inside[0] = True
            device = _stage_device() if kind == "torch" else None
            # set-up: a torch stage's first call with a device, a worker's first wait on
            # its server (the server's own first calls)
            first = (device is not None or kind == "served") and key not in _called
            if first:
                _called.add(key)
            if kind == "served":
                _record["calls"][stage] += 1
            t = time.perf_counter()
            try:
                out = fn(*a, **k)
                if str(device).startswith("cuda"):
                    import torch

                    torch.cuda.synchronize()
                return out
            finally:
                # a torch stage's first call in a process imports and sets up (torch._dynamo
                # for the custom ops, cuDNN, ...): start-up, not the stage's steady cost
                seconds = time.perf_counter() - t
                if first:
                    _record["first_calls_s"] += seconds
                else:
                    _record["stages"][stage] += seconds
                _inside[0] = False
        return timed
    return make


def _init_timer(fn):
    def init_worker(*a, **k):
        from mimic_fast.mining.device import stage_device

        t = time.perf_counter()
        out = fn(*a, **k)
        device = stage_device()
        if device is not None:
            import torch

            _install_torch_stages()
            if str(device).startswith("cuda"):
                torch.zeros(1, device=device)
                torch.cuda.synchronize()
        _record["init_s"] += time.perf_counter() - t
        install()  # the stages imported since (the served ones with a stage client)
        return out
    return init_worker


class _Ready:
    """The server's ready pipe: its start-up ends when it reports ready."""

    def __init__(self, conn, started: float):
        self._conn, self._started = conn, started

    def send(self, message) -> None:
        if message is None:
            _record["ready_at"] = time.perf_counter()
            _record["init_s"] = _record["ready_at"] - self._started
            _record["cpu_at_ready"] = time.process_time()
        self._conn.send(message)

    def close(self) -> None:
        self._conn.close()


def _serve_timer(fn):
    """A stage server process: start-up (torch, its device) until it reports ready; its
    record is written when the driver terminates it after the run."""
    @functools.wraps(fn)  # the same name: the driver pickles the target by name
    def serve(endpoint, pin, driver, ready):
        reset()
        _record.update(role="server", label=endpoint.label, device=endpoint.device,
                       batches=0, largest_batch=0, requests=defaultdict(int),
                       items=defaultdict(int), first_batch_at=None, last_reply_at=None)
        started = time.perf_counter()
        signal.signal(signal.SIGTERM, _dump_and_end)
        return fn(endpoint, pin, driver, _Ready(ready, started))
    return serve


def _dump_and_end(signum, frame) -> None:
    """SIGTERM in a stage server (the driver is done with it): write the record, then end as
    the signal would have (same exit code)."""
    try:
        _dump()
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _batch_timer(fn):
    """StageServer._run(key, payloads): one coalesced batch of requests in a server."""
    @functools.wraps(fn)
    def run(self, key, payloads):
        if _record["role"] != "server":  # a server in this process (tests, Ray): untimed
            return fn(self, key, payloads)
        if _server_device[0] is None:  # its first batch: the device is set up by now
            _server_device[0] = str(self.device)
            _install_torch_stages()
        t = time.perf_counter()
        if _record["first_batch_at"] is None:
            _record["first_batch_at"] = t
        try:
            return fn(self, key, payloads)
        finally:
            end = time.perf_counter()
            _record["busy_s"] += end - t
            _record["last_reply_at"] = end
            _record["batches"] += 1
            _record["largest_batch"] = max(_record["largest_batch"], len(payloads))
            _record["requests"][key[0]] += len(payloads)
            # evaluate: (views, pairs [P, 2]); sift: frames [B, H, W]
            _record["items"][key[0]] += sum(len(p[1]) if key[0] == "evaluate" else len(p)
                                            for p in payloads)
    return run


def _native_sift_import(fn):
    @functools.wraps(fn)
    def features_batch(rgbs, cfg, *a, **k):
        if cfg.sift == "native" and rgbs and NATIVE_SIFT_MODULE not in sys.modules:
            t = time.perf_counter()
            importlib.import_module(NATIVE_SIFT_MODULE)  # what the call would import first
            seconds = time.perf_counter() - t
            _record["first_calls_s"] += seconds
            _record["native_sift_import_s"] = seconds
        return fn(rgbs, cfg, *a, **k)
    return features_batch


def _stats_keeper(fn):
    @functools.wraps(fn)
    def log_server_stats(all_stats, exit_codes=None, seconds=None):
        server_stats.append({"stats": all_stats, "exit_codes": exit_codes, "seconds": seconds})
        return fn(all_stats, exit_codes, seconds)
    return log_server_stats


def _unit_timer(fn):
    def timed(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            _record["busy_s"] += time.perf_counter() - t
            _record["units"] += 1
    return timed


def _counter(fn):
    def counted(pairs, *a, **k):
        _record["evaluated"] += len(pairs)
        return fn(pairs, *a, **k)
    return counted


class _Forked:
    """Key of an after-fork hook: multiprocessing runs those in a child after clearing the
    finalizers it inherited, so the record's finalizer is registered from there."""


_forked = _Forked()
if os.environ.get(_INSTALL_ENV):  # preloaded by the forkserver (start_profiled_forkserver)
    install()
    from multiprocessing import util as _util

    _util.register_after_fork(_forked, lambda _: _worker_started())
