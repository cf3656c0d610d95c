"""``mine``: inputs -> sources -> per-source work (an engine) -> index.jsonl and summary.json.

Resumable: sources whose manifest is in ``DIR/_done`` are skipped (failed ones too, unless
``retry_failed``); index and summary are always rebuilt from all manifests, so a run that was
killed and started again ends with exactly the dataset of an uninterrupted run. One run at a
time per folder (:class:`mimic_fast._output_folder.FolderLock`); a full disk stops the run
(what landed stays; the same command continues once there is space).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

from mimic_fast._output_folder import LOCK_NAME, FolderLock, remove_dead_temporaries
from mimic_fast.dataset.schema import DONE_DIR, FORMAT, FORMAT_VERSION, manifest_path
from mimic_fast.dataset.writer import finalize, write_json_atomic
from mimic_fast.io.sources import Source, discover
from mimic_fast.mining.config import MineConfig, RunOptions

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
    if options.device == "cuda":
        raise NotImplementedError("GPU mining not implemented yet; use --device cpu (or auto)")
    t0 = time.perf_counter()
    out = Path(out)
    sources, input_errors = discover(inputs, config.kind, config.group_by)
    _check_usable(out, sources, input_errors)  # before anything is created
    with FolderLock(out):  # one run per dataset folder; the lock is taken before any write
        return _mine_locked(out, inputs, sources, input_errors, config, options,
                            on_source_done, t0)


def _mine_locked(out, inputs, sources, input_errors, config, options, on_source_done,
                 t0) -> dict:
    _check_or_write_config(out, inputs, sources, config, options)
    remove_dead_temporaries(out, out / DONE_DIR)  # of killed runs (no other run is alive)
    tasks = _tasks(out, sources, config)
    finished = _finished(out, sources, options.retry_failed)
    todo = [t for t in tasks if t.index not in finished]
    log.info("%d sources (%d already done) into %s", len(sources), len(finished), out)
    fresh: list[dict] = []

    bar = _progress(len(sources), len(finished), options.progress)

    def done(manifest: dict) -> None:
        finished[manifest["index"]] = manifest
        fresh.append(manifest)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(pairs=sum(m["accepted"] for m in finished.values()), refresh=False)
        if on_source_done is not None:
            on_source_done(manifest)

    try:
        _engine(todo, options, done)
    finally:
        if bar is not None:
            bar.close()
    summary = finalize(out, sources, finished, fresh, input_errors, options,
                        time.perf_counter() - t0)
    return summary


def _engine(todo, options: RunOptions, done) -> None:
    from mimic_fast.mining import engines

    if options.engine == "ray":
        engines.run_ray(todo, options.ray_address, done)
    else:
        engines.run_local(todo, options.workers, done)


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


def _progress(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="source", desc="mining", dynamic_ncols=True)


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
