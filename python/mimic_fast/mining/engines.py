"""Executors: run units of work (:func:`~mimic_fast.mining.worker.run_unit`: a whole source,
or a chunk of one) and report each result as it lands.

- ``run_serial``: in this process (local engine with one worker; easiest to debug).
- ``run_local``: a process pool (forkserver: workers start clean, no inherited threads),
  bounded submission, one core per worker, largest units first (:mod:`.schedule`);
  workers (and their forkserver) end when the driver dies (:mod:`mimic_fast._lifeline`). A
  worker that dies (e.g. a decoder segfault) breaks the pool; its in-flight units are
  retried one by one in fresh single-process pools so the culprit is found: a source is
  recorded as failed, a chunk asks for its source whole (where a second crash names it);
  the others finish normally. With a CUDA stage device the workers' batched stages run in
  stage server processes, one per GPU (:mod:`mimic_fast.mining.stage_service`), the only
  processes that hold the GPU: the workers decode and run OpenCV's SIFT on their cores.
- ``run_ray``: one Ray task per unit (num_cpus=1, no GPU), submitted largest first; with a
  torch stage device, the batched stages run in stage servers
  (:mod:`mimic_fast.mining.stage_server`): one Ray actor per GPU (num_gpus=1, holding its
  CUDA context) for ``"cuda"``, one on a core for ``"cpu"`` (the same code path, tested on a
  local Ray); the tasks decode and run OpenCV's SIFT on their cores and send their batches
  there. A task whose worker dies twice, or that Ray fails otherwise (any ``RayError``: out
  of memory, node died, object lost), counts as a dead worker (as above). Workers write the
  dataset folder directly, so on a multi-node cluster it must be on a shared filesystem.

Progress (``on_progress(unit, n)``: n more candidates evaluated) moves within a unit in every
engine: pool workers and Ray tasks report the candidates their unit has evaluated so far at
most every :data:`PROGRESS_EVERY` seconds (through a queue; through a small Ray actor), and the
driver forwards the increase while the unit is in flight (:mod:`.unit_progress`). A report
that arrives after the unit's result is dropped (the driver's book settles a finished unit's
count, ``run._Work._count``); a unit run again after its worker died first takes back what it
had reported.

``on_done(result)`` is called in the driver for every finished unit and returns the units it
asks for next (a source to mine whole when a chunk could not stand for its part), which are
run before the others; if it raises, the run stops there (what landed stays landed; a rerun
continues).
"""

from __future__ import annotations

import logging
import multiprocessing
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable

from mimic_fast._lifeline import process_identity
from mimic_fast.mining import stage_service
from mimic_fast.mining.device import is_cuda, set_stage_device
from mimic_fast.mining.schedule import largest_first
from mimic_fast.mining.unit_progress import OnProgress, ProgressBox, Reporter, Reports
from mimic_fast.mining.stage_server import StageClient
from mimic_fast.mining.worker import init_worker, run_unit, stops_the_run, unit_died

log = logging.getLogger(__name__)
PROGRESS_EVERY = 0.5  # seconds between a unit's progress reports (read at submission)
POLL = 0.25  # seconds the driver waits for a result before it forwards progress reports
OnDone = Callable[[dict], "list | None"]  # a unit's result -> the units to run next


def run_serial(tasks: list, on_done: OnDone, on_progress: OnProgress | None = None,
               device: str | None = None) -> None:
    import cv2

    import mimic_fast

    threads = (mimic_fast.get_num_threads(), cv2.getNumThreads())
    previous_setting = set_stage_device(device)  # restored after the run
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
        set_stage_device(previous_setting)


def run_local(tasks: list, workers: int, on_done: OnDone,
              on_progress: OnProgress | None = None, device: str | None = None) -> None:
    if workers <= 1 or len(tasks) <= 1:
        run_serial(tasks, on_done, on_progress, device)
        return
    if device is None or not stage_service.served(device, tasks[0].config.decoder):
        _run_local(tasks, workers, on_done, on_progress, device)
        return
    # the workers' stages go to server processes (one per GPU), which alone hold the device
    with stage_service.StageServers(_pool_context(device, served=True), device,
                                    min(workers, len(tasks)),
                                    process_identity()) as servers:
        log.info("stage servers: %s, for %d workers",
                 ", ".join(e.label for e in servers.endpoints), workers)
        start = time.perf_counter()
        _run_local(tasks, workers, on_done, on_progress, device, servers.endpoints)
        _log_server_stats(servers.stats(), servers.exit_codes(), time.perf_counter() - start)


def _run_local(tasks: list, workers: int, on_done: OnDone, on_progress: OnProgress | None,
               device: str | None, endpoints: list | None = None) -> None:
    """run_local's pools; ``endpoints``: the stage servers the workers send their stages to
    (then every unit runs in a pool process, never in the driver)."""
    suspects = _run_pool(largest_first(tasks), min(workers, len(tasks)), on_done, device,
                         on_progress, endpoints)
    for task in suspects:  # each alone, so a crash names its source
        if _run_pool([task], 1, on_done, device, on_progress, endpoints):
            more = on_done(unit_died(task, "worker process died while mining this source"))
            if more and endpoints is None:
                run_local(more, workers, on_done, on_progress, device)
            elif more:
                _run_local(more, workers, on_done, on_progress, device, endpoints)


_progress_queue = None  # a pool worker's channel to the driver (None: no progress wanted)


def _init_pool_worker(driver: tuple, device: str | None, progress_queue,
                      stages: tuple | None = None) -> None:
    """``stages``: (the stage servers' endpoints, a counter shared by the pool's workers) when
    the stages run in servers: each worker takes the next server in turn."""
    global _progress_queue
    if stages is not None:
        endpoints, counter = stages
        with counter.get_lock():
            k = counter.value
            counter.value += 1
        endpoint = endpoints[k % len(endpoints)]
        device = StageClient(stage_service.ServerConnection(endpoint), endpoint.device)
    init_worker(driver, device)
    _progress_queue = progress_queue


def _pool_run_unit(task, sid: int, every: float) -> dict:
    progress = None
    if _progress_queue is not None:
        put = _progress_queue.put
        progress = Reporter(lambda attempt, total: put((sid, attempt, total)), every)
    return run_unit(task, progress)


def _run_pool(tasks: list, workers: int, on_done: OnDone, device: str | None = None,
              on_progress: OnProgress | None = None, endpoints: list | None = None) -> list:
    """Run tasks (and the units their results ask for) in a pool; returns the tasks in flight
    when the pool broke (if it did). ``endpoints``: stage servers for the workers."""
    ctx = _pool_context(device, served=endpoints is not None)
    stages = None if endpoints is None else (endpoints, ctx.Value("i", 0))
    # a SimpleQueue writes in the worker's own thread (a report is in the pipe before the
    # unit's result), one small atomic write per report; one queue per pool, as a worker that
    # died writing could leave it unusable
    reports = None if on_progress is None else Reports(on_progress)
    queue = None if reports is None else ctx.SimpleQueue()

    def forward_reports() -> None:
        while queue is not None and not queue.empty():
            reports.report(*queue.get())

    todo = list(reversed(tasks))
    running: dict = {}  # future -> task, until its result is handed to on_done
    ids: dict = {}  # future -> its submission's id (progress reports)
    completed = 0
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_pool_worker,
                             initargs=(process_identity(), device, queue, stages)) as pool:
        try:
            while todo or running:
                while todo and len(running) < 2 * workers:
                    sid = -1 if reports is None else reports.start(todo[-1])
                    fut = pool.submit(_pool_run_unit, todo[-1], sid, PROGRESS_EVERY)
                    running[fut], ids[fut] = todo[-1], sid
                    todo.pop()
                done, _ = wait(running, timeout=None if queue is None else POLL,
                               return_when=FIRST_COMPLETED)
                forward_reports()
                broken = False
                for fut in sorted(done, key=lambda f: running[f].index):
                    try:
                        result = fut.result()
                    except BrokenProcessPool:
                        broken = True  # stays in `running`: the culprit is among these
                        continue
                    del running[fut]
                    if reports is not None:
                        reports.end(ids[fut])
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
            if reports is not None:
                for fut in running:  # each runs again
                    reports.end(ids[fut], abandoned=True)
            suspects = sorted(running.values(), key=lambda t: t.index)
            log.warning("a worker process died; retrying its %d sources one by one",
                        len(suspects))
            remaining = list(reversed(todo))
            return suspects + (_run_pool(remaining, workers, on_done, device, on_progress,
                                         endpoints) if remaining else [])
        except BaseException:
            for fut in running:
                fut.cancel()
            raise
    return []


def start_pool_early(workers: int, device: str | None = None, decoder: str = "opencv") -> None:
    """Boot the local pool's forkserver now, in the background: it imports the mining modules
    (about 0.3 s of a core) while the driver plans the run on another core, so the pool's
    workers start that much sooner. Nothing to do with one worker (no pool)."""
    if workers > 1:
        _pool_context(device, device is not None and stage_service.served(device, decoder))
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _pool_context(device: str | None, served: bool = False):
    ctx = multiprocessing.get_context("forkserver")
    # used when the forkserver starts (a running one keeps what it imported)
    ctx.set_forkserver_preload(_worker_modules(device, served))
    return ctx


def _worker_modules(device: str | None = None, served: bool = False) -> list[str]:
    """What the forkserver imports once for all the pool's workers: the mining modules, and
    torch when the workers compute with it (a stage device they run themselves, or the CPU
    evaluation matching with it; else every worker of every run imports it again: about 2
    CPU seconds each, measured). Not when stage servers run the stages (``served``): the
    workers never touch torch then, and they start without waiting for its import, while
    each server imports it. Importing torch initialises no CUDA, so the workers forked after
    it may still use it."""
    from mimic_fast.mining import evaluate

    uses_torch = (device is not None and not served) or getattr(
        evaluate, "CPU_MATCHER", "opencv") != "opencv"
    return ["mimic_fast.mining.worker", "mimic_fast.mining.chunks"] + (
        ["torch"] if uses_torch else [])


def _workers_can_start(ctx) -> bool:
    try:
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=init_worker) as pool:
            pool.submit(int).result()
    except BrokenProcessPool:
        return False
    return True


def run_ray(tasks: list, address: str | None, on_done: OnDone, device: str | None = None,
            on_progress: OnProgress | None = None) -> None:
    try:
        import ray
    except ImportError as exc:
        raise RuntimeError("--engine ray needs Ray: pip install 'mimic-fast[ray]'") from exc
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    servers = _start_stage_servers(ray, device)
    start = time.perf_counter()
    remote = ray.remote(num_cpus=1, num_gpus=0, max_retries=1)(_ray_run_unit)
    reports = None if on_progress is None else Reports(on_progress)
    box = None if reports is None else ray.remote(num_cpus=0)(ProgressBox).remote()
    driver = process_identity()
    refs: dict = {}  # object ref -> (unit, submission id)

    def submit(task) -> None:
        sid = len(refs) if reports is None else reports.start(task)
        # the stage setting of the task: a stage server's client, or the device (None: the
        # CPU default), spread over the servers in turn
        stages = StageClient(servers[sid % len(servers)], device) if servers else device
        refs[remote.remote(task, driver, stages, sid, box, PROGRESS_EVERY)] = (task, sid)

    def forward_reports() -> None:
        if box is not None:
            for sid, (attempt, total) in ray.get(box.take.remote()).items():
                reports.report(sid, attempt, total)

    for t in largest_first(tasks):
        submit(t)
    pending = list(refs)
    try:
        while pending:
            ready, pending = ray.wait(pending, num_returns=1,
                                      timeout=None if box is None else POLL)
            forward_reports()
            if not ready:
                continue
            ref = ready[0]
            task, sid = refs[ref]
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:  # crashed, OOM-killed, node died, lost...
                cause = getattr(exc, "cause", None)  # a RayTaskError wraps the task's exception
                if stops_the_run(cause):
                    raise cause from None  # no fault of the source: stop, as the pool does
                result = unit_died(task, f"Ray task failed: {type(exc).__name__}")
            if reports is not None:
                reports.end(sid)
            before = set(refs)
            for more in on_done(result) or []:
                submit(more)
            pending += [r for r in refs if r not in before]
        _log_stage_stats(ray, servers, time.perf_counter() - start)
    except BaseException:
        for ref in pending:
            ray.cancel(ref)
        raise
    finally:
        for actor in servers + ([box] if box is not None else []):
            ray.kill(actor)


def _start_stage_servers(ray, device: str | None) -> list:
    """The stage servers of a run with a torch stage device: one Ray actor per GPU of the
    cluster for "cuda" (num_gpus=1: it holds that GPU and its CUDA context), one on a core for
    "cpu"; none for the CPU default (None: every task runs its stages itself)."""
    if device is None:
        return []
    from mimic_fast.mining.stage_server import StageServer

    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if is_cuda(device) else 0
    if is_cuda(device) and not gpus:
        raise RuntimeError("--device cuda with --engine ray: the Ray cluster has no GPU")
    # each concurrent call waits in a thread of its own while the stages run: room for one
    # call from every task that can run at once; a server that died comes back once, and
    # the calls it held are sent again (a request's result does not depend on its batch)
    actor = ray.remote(num_cpus=1, num_gpus=1 if gpus else 0, max_restarts=1,
                       max_task_retries=1,
                       max_concurrency=max(2, int(resources.get("CPU", 1))))(StageServer)
    return [actor.remote(device, threads=1) for _ in range(max(gpus, 1))]


def _log_stage_stats(ray, servers: list, seconds: float) -> None:
    if not servers:
        return
    try:
        all_stats = ray.get([s.stats.remote() for s in servers])
    except ray.exceptions.RayError as exc:  # the run is done; only the statistics are lost
        log.warning("stage server statistics unavailable: %s", type(exc).__name__)
        return
    _log_server_stats(all_stats, seconds=seconds)


def _log_server_stats(all_stats: list, exit_codes: list | None = None,
                      seconds: float | None = None) -> None:
    """Each stage server's statistics (None: a local server that died during the run);
    ``seconds``: how long they served (their occupancy is their busy time over it)."""
    for k, stats in enumerate(all_stats):
        if stats is None:
            code = None if exit_codes is None else exit_codes[k]
            log.error("stage server %d died during the run (exit code %s): the run stopped "
                      "there; what landed is kept, and the same command continues", k, code)
            continue
        items = stats.get("items", {})
        work = [f"{items[kind]} {what}" for kind, what in (("evaluate", "pairs"),
                                                           ("sift", "frames")) if kind in items]
        busy = f"busy {stats.get('busy_seconds', 0):.1f} s"
        if seconds:
            busy += f" of {seconds:.1f} s ({100 * stats.get('busy_seconds', 0) / seconds:.0f}%)"
        log.info("stage server %d on %s: %s requests in %d batches (largest %d requests), %s, "
                 "%s", k, stats["device"], stats["requests"], stats["batches"],
                 stats["largest_batch"], " and ".join(work) or "nothing", busy)


def _ray_run_unit(task, driver: tuple, stages, sid: int, box, every: float) -> dict:
    init_worker(driver, stages)
    progress = None if box is None else Reporter(
        lambda attempt, total: box.add.remote(sid, attempt, total), every)
    return run_unit(task, progress)
