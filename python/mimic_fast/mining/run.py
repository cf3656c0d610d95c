"""``mine``: inputs -> sources -> units of work (whole sources, or chunks of long ones:
:mod:`.chunks`) run by an engine -> per-source shards and manifests -> index.jsonl and
summary.json.

Resumable: sources whose manifest is in ``DIR/_done`` are skipped (failed ones too, unless
``retry_failed``), and so are chunks whose part landed; index and summary are always rebuilt
from all manifests, so a run that was killed and started again ends with exactly the dataset
of an uninterrupted run. One run at a time per folder
(:class:`mimic_fast._output_folder.FolderLock`); a full disk stops the run (what landed
stays; the same command continues once there is space).

Progress counts candidates evaluated (an ordered source's (i, i+1), a group's pairs, a list's
rows), with rate and ETA, within units as they go in every engine
(:mod:`mimic_fast.mining.engines`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from mimic_fast._output_folder import (
    LOCK_NAME, FolderLock, is_out_of_space, remove_dead_temporaries,
)
from mimic_fast.dataset.schema import DONE_DIR, FORMAT, FORMAT_VERSION, manifest_path
from mimic_fast.dataset.writer import finalize, write_json_atomic
from mimic_fast.io.sources import Source, discover
from mimic_fast.mining.config import MineConfig, RunOptions, for_device
from mimic_fast.mining.device import resolve as resolve_device
from mimic_fast.mining.progress import Progress

log = logging.getLogger(__name__)


class DatasetMismatch(RuntimeError):
    """DIR already holds a dataset mined from other sources or with other settings."""


def mine(
    inputs: list[str | Path],
    out: str | Path,
    config: MineConfig = MineConfig(),
    options: RunOptions = RunOptions(),
    on_source_done: Callable[[dict], None] | None = None,
) -> dict:
    """Mine ``inputs`` into the dataset folder ``out``; returns the summary (also written to
    ``out/summary.json``). Format: :mod:`mimic_fast.dataset.schema`.

    on_source_done(manifest) is called in this process after each source lands (tests use
    it to simulate a crash).
    """
    device = resolve_device(options.device)  # one that cannot run here: refused before anything
    if options.engine == "local":
        from mimic_fast.mining.engines import start_pool_early

        start_pool_early(options.workers, device, config.decoder)  # boots while it is planned
    config = for_device(config, device)  # config.json records what ran
    if config.decoder == "dali":
        from mimic_fast.io.dali_decode import dali_missing

        why = dali_missing(need_gpu=device == "cuda")
        if why:
            raise ValueError(f"--decoder dali cannot run: {why}")
    t0 = time.perf_counter()
    out = Path(out)
    sources, input_errors = discover(inputs, config.kind, config.group_by)
    _check_usable(out, sources, input_errors)  # before anything is created
    with FolderLock(out):  # one run per dataset folder; the lock is taken before any write
        return _mine_locked(out, inputs, sources, input_errors, config, options, device,
                            on_source_done, t0)


def _mine_locked(out, inputs, sources, input_errors, config, options, device,
                 on_source_done, t0) -> dict:
    from mimic_fast.mining import chunks

    _check_or_write_config(out, inputs, sources, config, options)
    remove_dead_temporaries(out, out / DONE_DIR, *chunks.part_folders(out))  # of killed runs
    tasks = _tasks(out, sources, config)
    finished = _finished(out, sources, options.retry_failed)
    for i in finished:
        chunks.remove_parts(out, i)
    todo = [t for t in tasks if t.index not in finished]
    log.info("%d sources (%d already done) into %s", len(sources), len(finished), out)
    fresh: list[dict] = []
    work = _Work(todo, options, len(sources), len(finished))

    def done(manifest: dict) -> None:
        finished[manifest["index"]] = manifest
        fresh.append(manifest)
        work.bar.source_done(sum(m["accepted"] for m in finished.values()))
        if on_source_done is not None:
            on_source_done(manifest)

    work.on_source_done = done
    try:
        for manifest in work.assemble_landed():  # sources whose every part landed before
            done(manifest)
        _engine(work.units, options, device, work.on_result, work.on_progress)
    finally:
        work.bar.close()
    if len(finished) == len(sources):
        chunks.remove_parts(out)
    summary = finalize(out, sources, finished, fresh, input_errors, options,
                        time.perf_counter() - t0)
    return summary


class _Work:
    """The driver's book of units: plans sources into units, collects chunk parts, assembles
    a source once all its parts are in, asks for a source whole when a chunk cannot stand for
    its part, and counts progress."""

    def __init__(self, todo, options: RunOptions, n_sources: int, n_finished: int):
        from mimic_fast.mining import chunks

        self.sources = {t.index: t for t in todo}
        workers = options.workers if options.engine == "local" else 1
        self.plans = {t.index: chunks.plan_source(t, options.chunk, workers)
                      for t in todo}
        self.parts: dict[int, dict[int, dict]] = {}  # source -> chunk -> landed part
        self.whole: set[int] = set()  # sources asked for whole after a chunk said so
        self.units: list = []
        self.redo: list = []  # sources to mine whole, not yet handed to the engine
        self.counted: dict = {}  # unit key -> candidates already counted on the bar
        landed = 0
        for t in todo:
            plan = self.plans[t.index]
            if not plan.chunks:
                self.units.append(t)
                continue
            self.parts[t.index] = {}
            for c in plan.chunks:
                part = chunks.landed_part(c)
                if part is None:
                    self.units.append(c)
                else:
                    self.parts[t.index][c.number] = part
                    landed += c.work
        total = sum(p.estimate for p in self.plans.values())
        self.bar = Progress(total, landed, n_sources, n_finished, options.progress)
        self.on_source_done = None

    def assemble_landed(self) -> list[dict]:
        """Manifests of the sources whose every part landed in an earlier run (the units of
        those whose parts would not assemble are added to :attr:`units`)."""
        landed = [m for i in list(self.parts) if (m := self._assemble_if_complete(i)) is not None]
        self.units[:0], self.redo = self.redo, []
        return landed

    def on_progress(self, unit, n: int) -> None:
        key = _key(unit)
        self.counted[key] = self.counted.get(key, 0) + n
        self.bar.advance(n)

    def on_result(self, result: dict) -> list:
        """An engine's on_done: a manifest lands; a part is collected (and its source
        assembled when complete); a "whole" chunk turns into its source's unit."""
        index = result["index"]
        if "chunk" not in result:
            self._count(("source", index), self.plans[index].estimate)
            self.on_source_done(result)
            return []
        chunk = self.plans[index].chunks[result["chunk"]]
        self._count(_key(chunk), chunk.work)
        if index in self.whole:
            return []  # its source is (being) mined whole
        if result["status"] != "done":
            self._mine_whole(index, f"chunk {result['chunk']}: {result['reason']}")
        else:
            self.parts[index][result["chunk"]] = result
            manifest = self._assemble_if_complete(index)
            if manifest is not None:
                self.on_source_done(manifest)
        redo, self.redo = self.redo, []
        return redo

    def _mine_whole(self, index: int, why: str) -> None:
        from mimic_fast.mining.chunks import remove_parts

        log.info("source %s mined whole: %s", self.sources[index].source.path, why)
        self.whole.add(index)
        self.parts.pop(index, None)
        remove_parts(self.sources[index].out, index)
        self.bar.add_total(self.plans[index].estimate)
        self.redo.append(self.sources[index])

    def _assemble_if_complete(self, index: int) -> dict | None:
        from mimic_fast.mining.chunks import assemble, remove_parts

        parts = self.parts[index]
        if len(parts) < len(self.plans[index].chunks):
            return None
        task = self.sources[index]
        try:
            manifest = assemble(task, [parts[k] for k in sorted(parts)])
        except (OSError, ValueError) as exc:  # a part damaged or lost since it landed
            if is_out_of_space(exc):
                raise
            self._mine_whole(index, f"its parts do not assemble: {exc}")
            return None
        remove_parts(task.out, index)
        del self.parts[index]
        return manifest

    def _count(self, key, work: int) -> None:
        """A unit finished: the bar gets what its progress calls did not already give."""
        rest = work - self.counted.pop(key, 0)
        if rest > 0:
            self.bar.advance(rest)


def _key(unit) -> tuple:
    number = getattr(unit, "number", None)
    return ("source", unit.index) if number is None else ("chunk", unit.index, number)


def _engine(units, options: RunOptions, device: str | None, on_done, on_progress) -> None:
    from mimic_fast.mining import engines

    if options.engine == "ray":
        engines.run_ray(units, options.ray_address, on_done, device, on_progress)
    else:
        engines.run_local(units, options.workers, on_done, on_progress, device)


def _tasks(out: Path, sources: list[Source], config: MineConfig):
    from mimic_fast.mining.worker import SourceTask

    return [SourceTask(str(out), i, s, config) for i, s in enumerate(sources)]


def _finished(out: Path, sources: list[Source], retry_failed: bool) -> dict[int, dict]:
    finished = {}
    for i, s in enumerate(sources):
        p = manifest_path(out, i)
        if not p.is_file():
            continue
        try:
            m = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # unreadable manifest: do the source again
        if m.get("source", {}).get("id") != s.id:
            continue
        if m.get("status") == "failed" and retry_failed:
            continue
        if m.get("shard") and not (out / m["shard"]).is_file():
            continue  # shard lost since: redo
        finished[i] = m
    return finished


class NoUsableInput(ValueError):
    """None of the inputs resolved to a source; the message gives each input's reason."""


def _check_usable(out: Path, sources: list, input_errors: list[dict]) -> None:
    """Refuse at once, creating nothing: no input usable at all; an --out that is a file, or
    a folder holding files but no dataset (mining would mix a dataset into it)."""
    if not sources:
        reasons = "; ".join(f"{e['input']}: {e['error']}" for e in input_errors)
        raise NoUsableInput(f"no usable input ({reasons or 'none given'})")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.is_dir() and not (out / "config.json").is_file():
        others = sorted(p.name for p in out.iterdir() if p.name != LOCK_NAME)
        if others:
            raise DatasetMismatch(f"{out} is not empty and holds no mimic-fast dataset (e.g. "
                                  f"{others[0]}); mine into a new or empty folder")


def _check_or_write_config(out, inputs, sources, config, options) -> None:
    import mimic_fast

    path = out / "config.json"
    want = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "mimic_fast_version": mimic_fast.__version__,
        "mining": config.to_dict(),
        "inputs": [str(i) for i in inputs],
        "sources": [dict(index=i, **s.as_dict()) for i, s in enumerate(sources)],
        "run": options.to_dict(),
    }
    if path.is_file():
        have = json.loads(path.read_text())
        if have.get("packed"):
            raise DatasetMismatch(
                f"{out} is a packed copy of {have['packed'].get('from')}; mine into that "
                "dataset and pack it again")
        for field in ("format", "mining", "sources"):
            if have.get(field) != want[field]:
                raise DatasetMismatch(
                    f"{out} holds a dataset with different {field!r} (mined from other inputs "
                    f"or with other settings); use another --out or remove it")
        return
    if any(out.glob("pairs-*.tar")) or (out / DONE_DIR).is_dir():
        raise DatasetMismatch(f"{out} has shards but no config.json; use another --out")
    write_json_atomic(path, want)


def format_summary(summary: dict) -> str:
    """The end-of-run table."""
    rows = [
        ("sources", f"{summary['sources']} ({summary['sources_failed']} failed, "
                    f"{summary['sources_skipped']} done before)"),
        ("frames", summary["frames"]),
        ("candidates", summary["candidates"]),
        ("accepted pairs", summary["accepted"]),
    ]
    rows += [(f"  rejected: {k}", v) for k, v in summary["rejected"].items()]
    rows += [("errors", len(summary["errors"])), ("shards", len(summary["shards"])),
             ("seconds", summary["seconds"]),
             ("candidates/s", summary["candidates_per_second"])]
    width = max(len(k) for k, _ in rows)
    text = "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
    for e in summary["errors"][:10]:
        text += f"\n  ! {e['input']}: {e['error']}"
    if len(summary["errors"]) > 10:
        text += f"\n  ! ... {len(summary['errors']) - 10} more in summary.json"
    return text
