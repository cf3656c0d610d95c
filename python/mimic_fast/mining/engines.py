"""Executors: run units of work (:func:`~mimic_fast.mining.worker.run_unit`: a whole source,
or a chunk of one) and report each result as it lands.

- ``run_serial``: in this process (local engine with one worker; easiest to debug); the only
  one that reports progress within a unit (``on_progress``).
- ``run_local``: a process pool (forkserver: workers start clean, no inherited threads),
  bounded submission, one core per worker, largest units first (:mod:`.schedule`);
  workers (and their forkserver) end when the driver dies (:mod:`mimic_fast._lifeline`). A
  worker that dies (e.g. a decoder segfault) breaks the pool; its in-flight units are
  retried one by one in fresh single-process pools so the culprit is found: a source is
  recorded as failed, a chunk asks for its source whole (where a second crash names it);
  the others finish normally.
- ``run_ray``: one Ray task per unit (num_cpus=1), submitted largest first; a task whose
  worker dies twice, or that Ray fails otherwise (any ``RayError``: out of memory, node
  died, object lost), counts as a dead worker (as above). Workers write the dataset folder
  directly, so on a multi-node cluster it must be on a shared filesystem.

``on_done(result)`` is called in the driver for every finished unit and returns the units it
asks for next (a source to mine whole when a chunk could not stand for its part), which are
run before the others; if it raises, the run stops there (what landed stays landed; a rerun
continues).
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from mimic_fast._lifeline import process_identity
from mimic_fast._output_folder import is_out_of_space
from mimic_fast.mining.device import set_stage_device, stage_device
from mimic_fast.mining.schedule import largest_first
from mimic_fast.mining.worker import init_worker, run_unit, unit_died

log = logging.getLogger(__name__)
GPU_SHARE = 0.125  # of a GPU per Ray task with --device cuda: 8 tasks share one
OnDone = Callable[[dict], "list | None"]  # a unit's result -> the units to run next
OnProgress = Callable[[object, int], None]  # (unit, n more candidates evaluated)


def run_serial(tasks: list, on_done: OnDone, on_progress: OnProgress | None = None,
               device: str | None = None) -> None:
    import cv2

    import mimic_fast

    threads = (mimic_fast.get_num_threads(), cv2.getNumThreads())
    previous_device = stage_device()
    init_worker(device=device)
    queue = list(tasks)
    try:
        while queue:
            task = queue.pop(0)
            progress = None if on_progress is None else (
                lambda n, task=task: on_progress(task, n))
            queue[:0] = on_done(run_unit(task, progress)) or []
    finally:
        mimic_fast.set_num_threads(threads[0])
        cv2.setNumThreads(threads[1])
        set_stage_device(previous_device)


def run_local(tasks: list, workers: int, on_done: OnDone,
              on_progress: OnProgress | None = None, device: str | None = None) -> None:
    if workers <= 1 or len(tasks) <= 1:
        run_serial(tasks, on_done, on_progress, device)
        return
    suspects = _run_pool(largest_first(tasks), min(workers, len(tasks)), on_done, device)
    for task in suspects:  # each alone, so a crash names its source
        if _run_pool([task], 1, on_done, device):
            more = on_done(unit_died(task, "worker process died while mining this source"))
            if more:
                run_local(more, workers, on_done, device=device)


def _run_pool(tasks: list, workers: int, on_done: OnDone, device: str | None = None) -> list:
    """Run tasks (and the units their results ask for) in a pool; returns the tasks in flight
    when the pool broke (if it did)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_worker_modules())
    todo = list(reversed(tasks))
    running: dict = {}  # future -> task, until its result is handed to on_done
    completed = 0
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=init_worker,
                             initargs=(process_identity(), device)) as pool:
        try:
            while todo or running:
                while todo and len(running) < 2 * workers:
                    running[pool.submit(run_unit, todo[-1])] = todo[-1]
                    todo.pop()
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for fut in sorted(done, key=lambda f: running[f].index):
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True  # stays in `running`: the culprit is among these
                        continue
                    del running[fut]
                    completed += 1
                    todo.extend(reversed(on_done(result) or []))
                if broken:
                    raise BrokenProcessPool("a worker process died")
        except BrokenProcessPool:
            # A pool that finished nothing may never have had a working process; a crashing
            # source looks the same, so ask a fresh process to do nothing at all.
            if not completed and not _workers_can_start(ctx):
                raise RuntimeError(
                    "the worker processes could not start (a script using the local engine "
                    "with workers > 1 needs an `if __name__ == '__main__':` guard)") from None
            suspects = sorted(running.values(), key=lambda t: t.index)
            log.warning("a worker process died; retrying its %d sources one by one",
                        len(suspects))
            remaining = list(reversed(todo))
            return suspects + (_run_pool(remaining, workers, on_done) if remaining else [])
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
    return []


def _worker_modules() -> list[str]:
    """What the forkserver imports once for all the pool's workers: the mining modules, and
    torch when the CPU evaluation matches with it (else every worker of every run imports it
    again: about 2 CPU seconds each, measured)."""
    from mimic_fast.mining import evaluate

    uses_torch = getattr(evaluate, "CPU_MATCHER", "opencv") != "opencv"
    return ["mimic_fast.mining.worker", "mimic_fast.mining.chunks"] + (
        ["torch"] if uses_torch else [])


def _workers_can_start(ctx) -> bool:
    try:
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=init_worker) as pool:
            pool.submit(int).result()
    except BrokenProcessPool:
        return False
    return True


def run_ray(tasks: list, address: str | None, on_done: OnDone,
            device: str | None = None) -> None:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("--engine ray needs Ray: pip install 'mimic-fast[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    # on the GPU, tasks share each GPU (SIFT and decoding still take a core each); not yet
    # the design of one GPU actor per GPU fed by CPU tasks
    gpus = GPU_SHARE if device == "cuda" else 0
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=1)(_ray_run_unit)
    driver = process_identity()
    refs = {remote.remote(t, driver, device): t for t in largest_first(tasks)}
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            ref = ready[0]
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # crashed, OOM-killed, node died, lost...
                cause = getattr(exc, "cause", None)  # a RayTaskError wraps the task's exception
                if is_out_of_space(cause):
                    raise cause from None  # no fault of the source: stop, as the pool does
                result = unit_died(refs[ref], f"Ray task failed: {type(exc).__name__}")
            for task in on_done(result) or []:
                ref = remote.remote(task, driver, device)
                refs[ref] = task
                pending.append(ref)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise


def _ray_run_unit(task, driver: tuple, device: str | None = None) -> dict:
    init_worker(driver, device)
    return run_unit(task)
