"""bench_mining.py's device rows: `mine` with its torch stages on a device, stage by stage.

    python benchmarks/bench_mining.py --device cuda [--quick]

With ``--device cuda``, or ``--device cpu`` (the same torch stages on the CPU, which
`mine --device cpu` does not run: see torch_stages), instead of its rows (a)-(c): on frame folders
(generated: DISTINCT_SOURCES camera paths and hard links to them; or --inputs), `mine` with
--workers processes (default: all cores) in three rows, interleaved:
  - the CPU default (OpenCV SIFT, matcher and RANSAC, numpy overlap): the baseline;
  - ``--device D --ransac native --sift opencv``: matching, RANSAC, overlap on D, SIFT on the
    cores (issue 11's goal: >= 1,000 candidates/s on one H200 machine with 16 cores);
  - ``--device D --ransac native --sift native``: SIFT on D too (issue 12: >= 5,000).
Each row: candidates/s end to end (the wall time of `mine`: pool start, imports, CUDA
contexts included), and where its workers' time went (mining_profile's timers in every
worker: decode, SIFT, match, RANSAC, overlap, encode, other, first calls of the torch stages,
start-up, idle), the stage that bounds it, and the rate at full occupancy (no start-up, no
idle workers: what a long run approaches). Sizes: DEVICE_SIZES (a probe run per row sizes
its runs; a run past the deadline is stopped). Writes benchmarks/results/bench_mining-cuda.json
(gpu_check.sh's copy: bench_mining-h200.json), or bench_mining-cpu-torch-stages.json.

Stage servers: with --device cuda the local engine runs the torch stages in one stage-server
process per GPU (mimic_fast.mining.stage_service), and the workers decode, run OpenCV's SIFT,
encode, and wait on the server. Then the workers' rows show those waits ("evaluate (server)",
"sift (server)"), the server's own record shows its busy time, batches and stages, and the
bound says which side limits the run: the server (busy near all the time it serves) or the
workers' CPU stages. ``--device cpu --served`` runs that path with the server on the CPU
(what the tests do), to check the breakdown without a GPU.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from bench_common import environment
from bench_mining import HERE, generate, photo_kind

# Sizes of the device rows. The GPU's speed is unknown in advance (none of this has run on a
# GPU yet), so a run's number of sources is chosen from a probe run (one source per worker,
# which is also the warm-up: imports, CUDA contexts) to last about `target` seconds, up to
# `max_sources`; a run still going after `deadline` seconds is stopped when its next source
# lands and its rate taken over what landed.
DEVICE_SIZES = {
    # gpu_check.sh's bench_mining step, estimated (never run there) for one H200 machine with
    # 16 cores: ~10 s of imports and generation, then per row a probe and a run, each paying
    # the workers' start-up (~1 s on the CPU rows; ~5 s with torch: import, CUDA context,
    # the custom ops' first call) plus ~1 s and ~4 s of work: about 50 s; 75 s at most
    # when the deadlines stop a slow row
    "quick": {"max_sources": 384, "frames": 40, "repeats": 1, "target": 4.0, "deadline": 10.0},
    "full": {"max_sources": 1024, "frames": 40, "repeats": 3, "target": 20.0, "deadline": 60.0},
}
DISTINCT_SOURCES = 16  # generated camera paths; the other sources are hard links to them
# (row, goal in candidates/s, where it is set)
DEVICE_GOALS = (("sift opencv", 1000, "issue 11: GPU mining with OpenCV SIFT on the CPU"),
                ("sift native", 5000, "issue 12: GPU mining with native SIFT"))
# a stage server busy at least this share of the time it serves requests bounds the run
SERVER_BOUND_SHARE = 0.9


class _Deadline(Exception):
    pass


def _generate_one(job: tuple) -> None:
    root, k, n_frames = job
    generate(root, 1, n_frames, first=k)


def generate_linked(root: Path, n_sources: int, n_frames: int, distinct: int,
                    jobs: int) -> list[Path]:
    """n_sources frame folders: `distinct` generated camera paths (in `jobs` processes) and
    hard links to their files (mining costs the same on each; a source is named by its path)."""
    import multiprocessing

    distinct = max(1, min(distinct, n_sources))
    # fork: nothing here has touched CUDA or started threads that matter yet
    with multiprocessing.get_context("fork").Pool(max(1, min(jobs, distinct))) as pool:
        pool.map(_generate_one, [(root, k, n_frames) for k in range(distinct)])
    folders = [root / f"path{k:02d}" for k in range(distinct)]
    for k in range(distinct, n_sources):
        folder = root / f"path{k:02d}"
        folder.mkdir(parents=True)
        for f in sorted(folders[k % distinct].iterdir()):
            os.link(f, folder / f.name)
        folders.append(folder)
    return folders


@contextmanager
def torch_stages(device: str, served: bool = False):
    """`mine --device cpu` runs the CPU default (numpy and OpenCV stages, no torch); the device
    rows with --device cpu run the torch stages on the CPU instead (what --device cuda runs on
    the GPU), which no RunOptions value selects: the stage device that `mine` resolves is
    forced to "cpu" while this lasts; ``served``: in a stage server process, as --device cuda
    runs them (the local engine serves only "cuda": "cpu" is added to its served devices, as
    the tests do). --device cuda is mine's own (served)."""
    from mimic_fast.mining import run as run_mod
    from mimic_fast.mining import stage_service

    if device != "cpu":
        yield
        return
    resolve, serves = run_mod.resolve_device, stage_service.SERVED_DEVICES
    run_mod.resolve_device = lambda _device: "cpu"
    if served:
        stage_service.SERVED_DEVICES = tuple(serves) + ("cpu",)
    try:
        yield
    finally:
        run_mod.resolve_device = resolve
        stage_service.SERVED_DEVICES = serves


def profiled_run(inputs: list, n_sources: int, out: Path, cfg, options, device: str | None,
                 deadline: float, stages_dir: Path, served: bool = False) -> dict:
    """One `mine` with the stage timers in its workers (and stage servers); stopped (see
    DEVICE_SIZES) when still going after `deadline` s. device: None (CPU default), "cpu"
    (torch stages; ``served``: in a stage server) or "cuda"."""
    import mining_profile

    from mimic_fast.mining.run import mine

    shutil.rmtree(out, ignore_errors=True)
    landed = {"sources": 0, "frames": 0, "candidates": 0, "accepted": 0, "failed_sources": 0,
              "first_error": None}
    stopped = None
    t0 = time.perf_counter()

    def on_done(manifest: dict) -> None:
        nonlocal stopped
        landed["sources"] += 1
        for k in ("frames", "candidates", "accepted"):
            landed[k] += manifest[k]
        if manifest["status"] != "done":  # a source that failed in a worker (a CUDA error...)
            landed["failed_sources"] += 1
            landed["first_error"] = landed["first_error"] or manifest["error"]
        if landed["sources"] < n_sources and time.perf_counter() - t0 > deadline:
            stopped = time.perf_counter() - t0
            raise _Deadline

    mining_profile.reset()  # this process's record: a serial run's
    mining_profile.server_stats.clear()
    with torch_stages(device or "", served):
        try:
            mine(inputs, out, cfg, options, on_source_done=on_done)
        except _Deadline:
            pass
    wall = time.perf_counter() - t0
    here = mining_profile.record()  # this process's: a run of one unit is serial
    collected = mining_profile.collect(stages_dir)
    records = [r for r in collected if r.get("role") != "server"] or (
        [here] if here["units"] else [])
    servers = [r for r in collected if r.get("role") == "server"]
    shutil.rmtree(out, ignore_errors=True)
    seconds = wall if stopped is None else stopped
    profile = stage_profile(records, options.workers, wall, landed["candidates"],
                            stopped is None, cfg, device)
    profile["servers"] = [server_profile(r) for r in servers]
    # the engine's own end-of-run statistics of its servers (none for a run stopped early)
    profile["engine_server_stats"] = list(mining_profile.server_stats)
    profile.update(bound_verdict(profile))
    return {**landed, "seconds": seconds, "wall_s": wall,
            "stopped_at_deadline": stopped is not None,
            "candidates_per_s": landed["candidates"] / seconds, "profile": profile}


def stage_profile(records: list[dict], workers: int, wall: float, formed: int, complete: bool,
                  cfg, device: str | None) -> dict:
    """Where the workers' time went (``records``: the workers' only, never a stage server's):
    stage worker-seconds (summed over workers), with their waits on a stage server as stages
    of their own (mining_profile.SERVED_STAGES); other (inside units, outside the stages);
    first calls (each torch stage's first call in a worker, and its first wait on its
    server: imports, set-up); start-up (init_worker, torch, the CUDA context); idle (the rest
    of workers x wall: pool start, waiting for work, the driver's share). Per row the rate
    the workers would reach if it were all they did (the bound: :func:`bound_verdict`). Full
    occupancy: the rate with every worker busy all the time, less first calls; their own
    work: the same without their waits on a server."""
    import mining_profile as mp

    served = [k for k in mp.SERVED_STAGES if any(k in r["stages"] for r in records)]
    stages = {k: sum(r["stages"].get(k, 0.0) for r in records) for k in mp.STAGES + tuple(served)}
    n = max(len(records), 1)
    busy = sum(r["busy_s"] for r in records)
    init = sum(r["init_s"] for r in records)
    first = sum(r.get("first_calls_s", 0.0) for r in records)
    evaluated = sum(r["evaluated"] for r in records)
    # candidates the timers saw: the dataset's when the run completed, else the evaluated
    # ones (a few % more than the dataset would have formed from them)
    seen = formed if complete or not evaluated else evaluated
    time_of = {**stages, "other": busy - sum(stages.values()) - first, "first calls": first,
               "start-up": init, "idle": n * wall - busy - init}
    on_device = [] if device is None else (
        ["sift"] * (cfg.sift == "native") + ["match"] + ["ransac"] * (cfg.ransac == "native")
        + ["overlap"])
    calls = {k: sum(r.get("calls", {}).get(k, 0) for r in records) for k in served}
    rows = {k: {"worker_s": v, "share": v / (n * wall) if wall > 0 else 0.0,
                "ms_per_candidate": 1e3 * v / seen if seen else None,
                "candidates_per_s_alone": n * seen / v if v > 0 and seen else None,
                **({"calls": calls[k], "ms_per_call": 1e3 * v / calls[k] if calls[k] else None}
                   if k in calls else {})}
            for k, v in time_of.items()}
    device_s = sum(stages[k] for k in on_device)
    # the workers' own work (their stages and the rest of their units, without the waits on
    # a stage server): the rate the cores allow at full occupancy if the server answered at once
    own = busy - first - sum(stages[k] for k in served)
    return {"workers": n, "worker_records": len(records), "evaluated": evaluated,
            "candidates_seen": seen, "busy_s": busy, "rows": rows,
            "largest": max(time_of, key=time_of.get), "stages_on_device": on_device,
            "served_stages": served,
            "device_stages_serial_candidates_per_s": seen / device_s if device_s > 0 else None,
            "full_occupancy_candidates_per_s": n * seen / (busy - first) if busy > first
            else None,
            "workers_own_work_candidates_per_s": n * seen / own if own > 0 and seen else None,
            # --sift native: the workers import torch for it, even when a server runs it
            "native_sift_import_s": sum(r.get("native_sift_import_s", 0.0) for r in records),
            "hooks_missing": sorted({m for r in records for m in r.get("missing", [])})}


def server_profile(rec: dict) -> dict:
    """A stage server's record (mining_profile: its batches and the stages in them): start-up,
    busy time, its share of the time it served (steady: from its first request to its last
    reply, its first calls aside), per stage seconds, and the candidates/s it would allow
    busy all the time."""
    import mining_profile as mp

    busy, first = rec["busy_s"], rec["first_calls_s"]
    steady, active = busy - first, rec.get("active_s", 0.0) - first
    pairs = rec.get("items", {}).get("evaluate", 0)
    stages = {k: v for k, v in rec["stages"].items() if k in mp.STAGES and v > 0}
    time_of = {**stages, "other": busy - sum(stages.values()) - first, "first calls": first}
    return {"label": rec.get("label"), "device": rec.get("device"), "pid": rec["pid"],
            "start_up_s": rec["init_s"], "serving_s": rec.get("window_s"),
            "active_s": rec.get("active_s"), "busy_s": busy, "first_calls_s": first,
            "cpu_s": rec.get("cpu_s"),
            "cpu_share_of_serving": rec["cpu_s"] / rec["window_s"] if rec.get("window_s")
            and rec.get("cpu_s") is not None else None,
            "busy_share_of_serving": busy / rec["window_s"] if rec.get("window_s") else None,
            "busy_share": steady / active if active > 0 else None,
            "requests": rec.get("requests", {}), "items": rec.get("items", {}),
            "batches": rec.get("batches", 0), "largest_batch": rec.get("largest_batch", 0),
            "rows": {k: {"seconds": v, "share_of_busy": v / busy if busy > 0 else 0.0,
                         "ms_per_pair": 1e3 * v / pairs if pairs else None}
                     for k, v in time_of.items()},
            "candidates_per_s_busy": pairs / steady if steady > 0 and pairs else None,
            "hooks_missing": rec.get("missing", [])}


def bound_verdict(p: dict) -> dict:
    """What limits the run once it is going (start-up, first calls and idle aside): a stage
    server busy nearly all the time it serves (SERVER_BOUND_SHARE); else the workers' waits on
    their server when those outweigh their own largest stage (round trips: transport,
    queueing, the server's GIL, not its stages); else the workers' largest stage."""
    import mining_profile as mp

    rows = p["rows"]
    steady = {k: rows[k]["worker_s"] for k in mp.STAGES + ("other",) if k in rows}
    waits = sum(rows[k]["worker_s"] for k in p["served_stages"])
    total = sum(steady.values()) + waits
    if not total:
        return {"bound": "unknown (no worker record)", "bound_by": None}
    top = max(steady, key=steady.get)
    top_share, wait_share = steady[top] / total, waits / total
    servers = [s for s in p["servers"] if s["busy_share"] is not None]
    share = max((s["busy_share"] for s in servers), default=None)
    cpu = max((s.get("cpu_share_of_serving") or 0 for s in servers), default=0)
    rates = [s["candidates_per_s_busy"] for s in servers if s["candidates_per_s_busy"]]
    server_rate = sum(rates) if rates else None
    own = p["workers_own_work_candidates_per_s"]
    out = {"bound_stage_share_of_workers": top_share, "wait_share_of_workers": wait_share,
           "server_busy_share": share, "server_candidates_per_s_busy": server_rate}
    numbers = (f"the workers' own work would allow {own:,.0f} cand/s" if own else "")
    if server_rate:
        numbers += (f"; the server, busy all the time, {server_rate:,.0f} cand/s"
                    if numbers else f"the server, busy all the time, {server_rate:,.0f} cand/s")
    if share is not None and share >= SERVER_BOUND_SHARE:
        out.update(bound_by="server", bound=f"the stage server (busy {share:.0%})",
                   bound_text=f"the stage server: busy {share:.0%} of the time from its first "
                   f"request to its last reply, first calls aside; {numbers}")
    elif p["served_stages"] and wait_share > top_share:
        out.update(bound_by="server round trips",
                   bound=f"round trips to the server ({wait_share:.0%} of the workers' "
                   f"time; server busy {share:.0%})" if share is not None else
                   f"round trips to the server ({wait_share:.0%} of the workers' time)",
                   bound_text=f"the workers wait on the stage server {wait_share:.0%} of their "
                   f"busy time (more than any stage of their own), but the server is busy only "
                   + (f"{share:.0%}" if share is not None else "(no server record)")
                   + f" of it: round trips (transport, queueing, the server's GIL: its "
                   f"process used {cpu:.0%} of a core while serving), not its stages; {numbers}")
    else:
        server = f"; server busy {share:.0%}" if share is not None else ""
        out.update(bound_by="workers",
                   bound=f"the workers' {top} ({top_share:.0%} of their time{server})",
                   bound_text=f"the workers' CPU stages: {top} takes {top_share:.0%} of their "
                   f"busy time (start-up, first calls and idle aside)" + server
                   + (f"; {numbers}" if numbers else ""))
    return out


def device_rows(args) -> int:
    """Device rows: see the module docstring."""
    import mining_profile

    from mimic_fast.io.sources import discover
    from mimic_fast.mining.config import MineConfig, RunOptions

    size = dict(DEVICE_SIZES["quick" if args.quick else "full"])
    for key, value in (("max_sources", args.sources), ("frames", args.frames),
                       ("repeats", args.repeats), ("target", args.target_seconds),
                       ("deadline", args.deadline)):
        if value is not None:
            size[key] = value
    workers = args.workers or os.cpu_count()
    # --device cuda is served by the engine itself; --served puts the CPU's in a server too
    served = args.device == "cuda" or args.served
    out_json = args.out or HERE / "results" / (
        "bench_mining-cuda.json" if args.device == "cuda" else
        "bench_mining-cpu-torch-stages-served.json" if served else
        "bench_mining-cpu-torch-stages.json")  # not the CPU rows' bench_mining-cpu.json
    tmp = Path(tempfile.mkdtemp(prefix="bench_mining-"))
    stages_dir = tmp / "stages"
    stages_dir.mkdir()
    try:
        t_start = time.perf_counter()
        if args.inputs:
            sources, sizing = list(args.inputs), False
            what = "real: " + ", ".join(map(str, args.inputs))
        else:
            sources = generate_linked(tmp / "input", size["max_sources"], size["frames"],
                                      DISTINCT_SOURCES, workers)
            photos = photo_kind()
            what = (f"GENERATED: up to {size['max_sources']} frame folders of {size['frames']} "
                    f"640x480 JPEG frames ({min(DISTINCT_SOURCES, size['max_sources'])} camera "
                    f"paths over {photos}, the others hard links to them)")
            sizing = True
        # after the generator's fork pool, before anything touches CUDA or starts the pool
        with torch_stages(args.device, served):  # what the engine preloads for a served run
            mining_profile.start_profiled_forkserver(stages_dir, args.device)
        mining_profile.install()  # in this process too: a run of one unit is serial
        print(f"input: {what}\n{workers} workers; device rows on {args.device}"
              + (" (its stages in a stage server process, the workers wait on it)"
                 if served else " (the stages in each worker)")
              + f" ({'quick' if args.quick else 'full'}: {size})")
        stage = args.device  # mine's stage device for the device rows
        run_device = "cuda" if stage == "cuda" else "cpu"
        configs = {
            "cpu default (baseline)": (MineConfig(interval=args.interval), "cpu", None),
            f"{stage}, sift opencv": (MineConfig(interval=args.interval, ransac="native",
                                                 sift="opencv"), run_device, stage),
            f"{stage}, sift native": (MineConfig(interval=args.interval, ransac="native",
                                                 sift="native"), run_device, stage),
        }
        rows: dict[str, dict] = {}
        header = {"benchmark": "bench_mining", "mode": "device rows", "device": args.device,
                  "served": served, "quick": args.quick, "input": what, "workers": workers,
                  "sizes": size, "environment": environment()}

        def save(complete: bool = False, **more) -> None:
            """The JSON so far (a run cut short by gpu_check's time limit keeps its rows)."""
            out_json.parent.mkdir(parents=True, exist_ok=True)
            out_json.write_text(json.dumps(
                {**header, "complete": complete, **more,
                 "seconds_total": time.perf_counter() - t_start,
                 "load_average": os.getloadavg(),
                 "rows": {k: {f: v for f, v in r.items() if f != "inputs"}
                          for k, r in rows.items()}}, indent=2, default=str) + "\n")

        for name, (cfg, run_dev, dev) in configs.items():
            row = rows[name] = {"config": {k: v for k, v in cfg.to_dict().items()
                                           if k in ("sift", "ransac", "decoder", "interval")},
                                "run_device": run_dev, "stage_device": dev, "runs": []}
            options = RunOptions(workers=workers, device=run_dev, progress=False)
            probe_inputs = sources[:workers] if sizing else sources
            try:  # a row that fails is reported; the others still run
                row["probe"] = probe = profiled_run(
                    probe_inputs, len(discover(probe_inputs, cfg.kind)[0]), tmp / "out", cfg,
                    options, dev, size["deadline"], stages_dir, served)
            except Exception as exc:
                row["error"] = f"{type(exc).__name__}: {exc}"
                print(f"  {name}: FAILED in its probe run: {row['error']}")
                continue
            n = len(sources)
            if sizing:  # sources for about size["target"] s at the probe's steady rate
                rate = probe["profile"]["full_occupancy_candidates_per_s"] or probe[
                    "candidates_per_s"]
                per_source = max(probe["candidates"] / max(probe["sources"], 1), 1.0)
                n = int(size["target"] * rate / per_source)
                n = min(max(workers, -(-n // workers) * workers), len(sources))
            row["inputs"] = sources[:n]
            print(f"  probe {name}: {probe['candidates']} candidates in {probe['seconds']:.1f} s"
                  f" -> {n} sources a run" + _failures(probe))
            save()
        for _ in range(size["repeats"]):  # interleaved: a drift of the machine hits every row
            for name, (cfg, run_dev, dev) in configs.items():
                row = rows[name]
                if "error" in row:
                    continue
                options = RunOptions(workers=workers, device=run_dev, progress=False)
                try:
                    row["runs"].append(profiled_run(
                        row["inputs"], len(discover(row["inputs"], cfg.kind)[0]), tmp / "out",
                        cfg, options, dev, size["deadline"], stages_dir, served))
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {exc}"
                    print(f"  {name}: FAILED: {row['error']}")
                save()
        for row in rows.values():
            runs = sorted(row["runs"], key=lambda r: r["candidates_per_s"])
            if runs:
                row["median"] = runs[len(runs) // 2]
            row["sources_per_run"] = len(row.pop("inputs", []))
        result = device_report(rows, args.device, workers)
        save(complete=True, **result)
        print(f"\n{time.perf_counter() - t_start:.0f} s in all; load average at the end: "
              f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}\nwrote {out_json}")
    finally:
        mining_profile.uninstall()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if any("error" in row for row in rows.values()) else 0  # gpu_check's rc


def _failures(run: dict) -> str:
    if not run["failed_sources"]:
        return ""
    return f"; {run['failed_sources']} sources FAILED, e.g.: {run['first_error']}"


def device_report(rows: dict, device: str, workers: int) -> dict:
    """Print the device rows (throughput, per-stage breakdown, goals); returns the goals."""
    base_row = rows["cpu default (baseline)"].get("median")
    base = base_row["candidates_per_s"] if base_row else None
    print(f"\n{'row (' + str(workers) + ' workers)':<28}{'sources':>8}{'candidates':>11}"
          f"{'seconds':>9}{'cand/s':>9}{'x baseline':>11}{'full occ.':>10}")
    for name, row in rows.items():
        m = row.get("median")
        if m is None:
            print(f"{name:<28}FAILED: {row['error']}")
            continue
        full = m["profile"]["full_occupancy_candidates_per_s"] or 0
        ratio = f"{m['candidates_per_s'] / base:>11.2f}" if base else f"{'-':>11}"
        print(f"{name:<28}{m['sources']:>8}{m['candidates']:>11}{m['seconds']:>9.2f}"
              f"{m['candidates_per_s']:>9.0f}{ratio}{full:>10.0f}"
              + ("  (stopped at the deadline)" if m["stopped_at_deadline"] else "")
              + _failures(m))
    print("(full occ.: every worker busy all the time, without start-up and first calls)")
    for name, row in rows.items():
        if "median" in row:
            print_stages(name, row["median"], device)
    goals = {}
    note = "" if device == "cuda" else " (a GPU goal; here the torch stages ran on the CPU)"
    for key, want, where in DEVICE_GOALS:
        m = rows[f"{device}, {key}"].get("median")
        if m is None:
            goals[f"{key}>={want}"] = {"end_to_end": False, "full_occupancy": False}
            print(f"goal >= {want:,} cand/s ({where}){note}: FAILED: "
                  f"{rows[f'{device}, {key}']['error']}: NOT met")
            continue
        got = m["candidates_per_s"]
        full = m["profile"]["full_occupancy_candidates_per_s"] or 0
        goals[f"{key}>={want}"] = {"end_to_end": got >= want, "full_occupancy": full >= want}
        print(f"goal >= {want:,} cand/s ({where}){note}: {got:,.0f} cand/s end to end: "
              f"{'met' if got >= want else 'NOT met'}; {full:,.0f} at full occupancy (a long "
              f"run): {'met' if full >= want else 'NOT met'}; bound by {m['profile']['bound']}")
    return {"goals": goals, "baseline_candidates_per_s": base}


def print_stages(name: str, run: dict, device: str) -> None:
    p = run["profile"]
    print(f"\nstages, {name}: {p['workers']} workers x {run['wall_s']:.1f} s, "
          f"{p['candidates_seen']} candidates"
          + (f"; on the {device}: {', '.join(p['stages_on_device'])}"
             if p["stages_on_device"] else "")
          + (" (in the stage server)" if p["servers"] or p["served_stages"] else ""))
    if not p["worker_records"]:
        print("  NOT profiled: no worker left its record (see mining_profile)")
        return
    print(f"  {'workers':<18}{'worker-s':>9}{'share':>7}{'ms/cand':>9}{'cand/s if only this':>21}")
    for k, r in p["rows"].items():
        alone = r["candidates_per_s_alone"]
        calls = (f"   {r['calls']} calls, {r['ms_per_call']:.1f} ms each"
                 if r.get("ms_per_call") else "")
        print(f"  {k:<18}{r['worker_s']:>9.2f}{100 * r['share']:>6.0f}%"
              f"{r['ms_per_candidate'] or 0:>9.2f}{alone if alone else float('nan'):>21.0f}"
              + calls)
    if p["served_stages"]:
        print("  (server): a worker waiting on its stage server: transport, queue, the batch")
    if p.get("native_sift_import_s"):
        print(f"  first calls include {p['native_sift_import_s']:.1f} worker-s importing the "
              "native SIFT's module (and torch) in the workers")
    print(f"  largest share of the workers' time: {p['largest']} "
          f"({100 * p['rows'][p['largest']]['share']:.0f}%)")
    for s in p["servers"]:
        print_server(s)
    if (p["worker_records"] and (p["served_stages"] or device == "cuda")
            and not p["servers"]):
        print("  stage server: NOT profiled (it left no record; see mining_profile)")
    for e in p.get("engine_server_stats", []):
        for k, stats in enumerate(e["stats"]):
            print(f"  the engine's statistics of stage server {k} (over {e['seconds']:.1f} s): "
                  + ("died during the run" if stats is None else
                     f"{stats['requests']} requests in {stats['batches']} batches (largest "
                     f"{stats['largest_batch']}), items {stats.get('items', {})}, busy "
                     f"{stats.get('busy_seconds', 0):.1f} s"))
    print(f"  bound: {p['bound_text'] if p.get('bound_by') else p['bound']}")
    if p["device_stages_serial_candidates_per_s"]:
        print(f"  the {device} stages, every worker's calls one after another, would still "
              f"allow {p['device_stages_serial_candidates_per_s']:.0f} cand/s")
    missing = sorted(set(p["hooks_missing"]).union(
        *(s["hooks_missing"] for s in p["servers"])))
    if missing:
        print(f"  NOT timed (names gone): {', '.join(missing)}")


def print_server(s: dict) -> None:
    """One stage server's part of a row: busy time, batches, and its stages."""
    share = f"{100 * s['busy_share']:.0f}%" if s["busy_share"] is not None else "-"
    work = "; ".join(f"{kind}: {n} requests, {s['items'].get(kind, 0)} "
                     f"{'pairs' if kind == 'evaluate' else 'frames'}"
                     for kind, n in s["requests"].items())
    print(f"  stage server {s['label']} ({s['device']}): start-up {s['start_up_s']:.1f} s "
          "(before the pool starts: in the workers' idle); "
          f"busy {s['busy_s']:.2f} s of {s['serving_s'] or 0:.1f} s serving; "
          f"{share} from its first request to its last reply (first calls aside); "
          f"CPU {s['cpu_s'] or 0:.1f} s while serving"
          + (f" ({100 * s['cpu_share_of_serving']:.0f}% of a core)"
             if s["cpu_share_of_serving"] is not None else ""))
    print(f"    {work or 'no requests'}; {s['batches']} batches, largest "
          f"{s['largest_batch']} requests")
    print(f"    {'server':<16}{'seconds':>9}{'of busy':>9}{'ms/pair':>9}")
    for k, r in s["rows"].items():
        print(f"    {k:<16}{r['seconds']:>9.2f}{100 * r['share_of_busy']:>8.0f}%"
              f"{r['ms_per_pair'] or 0:>9.2f}")
    if s["candidates_per_s_busy"]:
        print(f"    busy all the time, it would allow {s['candidates_per_s_busy']:,.0f} cand/s")
