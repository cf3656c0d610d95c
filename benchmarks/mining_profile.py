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
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

ENV = "BENCH_MINING_STAGES"  # folder for the workers' records
_INSTALL_ENV = "BENCH_MINING_STAGES_INSTALL"  # set only while the forkserver starts
STAGES = ("decode", "sift", "match", "ransac", "overlap", "encode")

# (module, attribute, stage, torch entry: runs on the stage device when one is set).
# Generators (video decoding) are timed frame by frame.
STAGE_HOOKS = (
    ("mimic_fast.mining.views", "read_image", "decode", False),
    ("mimic_fast.mining.views", "sample_video", "decode", False),
    ("mimic_fast.mining.views", "decode_span", "decode", False),
    ("mimic_fast.mining.views", "sift_rgb", "sift", False),  # OpenCV's, per view
    ("mimic_fast", "sift", "sift", True),  # native, batched
    ("mimic_fast.mining.evaluate", "ratio_match", "match", False),  # OpenCV's, per pair
    ("mimic_fast.features.batched_matching", "pad_descriptors", "match", False),
    ("mimic_fast.features.batched_matching", "match_descriptors", "match", True),
    ("mimic_fast.mining.evaluate", "ransac_homography", "ransac", False),  # OpenCV's, per pair
    ("mimic_fast.geometry.ransac", "pad_matches", "ransac", False),
    ("mimic_fast", "find_homographies", "ransac", True),  # native, batched
    ("mimic_fast", "patch_overlap", "overlap", True),
    ("mimic_fast.mining.sample", "encode_jpeg", "encode", False),  # accepted pairs' JPEGs
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

_record: dict = {}
_installed: dict = {}  # (module, name) -> original (or _ABSENT)
_ABSENT = object()
_inside = [False]
_called: set = set()  # torch entry points this process has called with a stage device set


def reset() -> None:
    _record.clear()
    _record.update(stages=defaultdict(float), init_s=0.0, first_calls_s=0.0, busy_s=0.0,
                   units=0, evaluated=0, pid=os.getpid())


reset()


def record() -> dict:
    return {**_record, "stages": dict(_record["stages"]), "missing": missing_hooks(False)}


def missing_hooks(import_all: bool = True) -> list[str]:
    """The hooked names that do not exist (renamed: the profile would miss them); without
    import_all, only in modules already imported."""
    out = []
    for module, name, *_ in STAGE_HOOKS + UNIT_HOOKS + (COUNT_HOOK,) + INIT_HOOKS[:1]:
        if not import_all and _target(module, name) not in sys.modules:
            continue
        if not hasattr(importlib.import_module(module), name):
            out.append(f"{module}.{name}")
    return out


def install() -> None:
    """Wrap the stage functions in this process. Stages in modules not imported yet (the
    torch ones: a CPU-default run never imports torch, and importing it costs seconds) are
    wrapped when init_worker sets a stage device."""
    for module in ("mimic_fast.mining.worker", "mimic_fast.mining.chunks",
                   "mimic_fast.mining.engines"):  # and with them the stages' modules
        importlib.import_module(module)
    for module, name, stage, torch_entry in STAGE_HOOKS:
        if _target(module, name) in sys.modules:
            _wrap(module, name, _stage_timer(stage, torch_entry, name in GENERATORS))
    for module, name in UNIT_HOOKS:
        _wrap(module, name, _unit_timer)
    _wrap(*COUNT_HOOK, _counter)
    for module, name in INIT_HOOKS:
        _wrap(module, name, _init_timer)


def uninstall() -> None:
    for (module, name), fn in reversed(list(_installed.items())):
        mod = sys.modules[module]
        if fn is _ABSENT:
            delattr(mod, name)
        else:
            setattr(mod, name, fn)
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
    """The records of the pool workers that exited since the last call (files removed)."""
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
    if folder and (_record["units"] or _record["init_s"]):
        (Path(folder) / f"{os.getpid()}.json").write_text(json.dumps(record()))


def _target(module: str, name: str) -> str:
    """The module defining ``module.name`` (mimic_fast's torch entry points are lazy)."""
    if module == "mimic_fast":
        import mimic_fast

        return getattr(mimic_fast, "_LAZY", {}).get(name, module)
    return module


def _wrap(module_name: str, name: str, make) -> None:
    if (module_name, name) in _installed:
        return
    mod = importlib.import_module(module_name)
    if not hasattr(mod, name):
        return  # reported by record()["missing"]
    fn = getattr(mod, name)
    _installed[(module_name, name)] = mod.__dict__.get(name, _ABSENT)  # lazy: absent
    setattr(mod, name, make(fn))


def _stage_device():
    from mimic_fast.mining.device import stage_device

    return stage_device()


def _stage_timer(stage: str, on_device: bool, generator: bool):
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
            device = _stage_device() if on_device else None
            first = device is not None and key not in _called
            if first:
                _called.add(key)
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

            import mimic_fast.features.batched_matching  # noqa: F401
            import mimic_fast.features.batched_sift  # noqa: F401

            if str(device).startswith("cuda"):
                torch.zeros(1, device=device)
                torch.cuda.synchronize()
        _record["init_s"] += time.perf_counter() - t
        install()  # the torch stages, now imported
        return out
    return init_worker


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
