"""The unit of work: mine ONE source and land its shard and manifest (both engines call
:func:`process_source`, in a pool process, a Ray task, or the driver itself)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from mimic_fast._output_folder import is_out_of_space
from mimic_fast.io.frames import read_pair_list
from mimic_fast.io.images import FrameError
from mimic_fast.io.sources import Source
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.evaluate import Candidate
from mimic_fast.mining.sample import encode_sample
from mimic_fast.mining.samplers import group_candidates, list_candidates, ordered_candidates
from mimic_fast.mining.views import folder_views, video_views, view_from_file
from mimic_fast.dataset.schema import index_row, manifest_path, shard_name
from mimic_fast.dataset.writer import ShardWriter, write_json_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceTask:
    out: str  # dataset folder
    index: int  # position in the run's sorted source list (names the shard)
    source: Source
    config: MineConfig


_watching: set = set()  # drivers this process already watches (Ray reuses its workers)


def init_worker(driver: tuple | None = None) -> None:
    """One core per worker: no nested OpenMP / OpenCV threading; and freed heap memory is
    kept for the next frame (see :mod:`mimic_fast._allocator`; in the serial engine this
    applies to the calling process, for good). ``driver`` (a
    :func:`mimic_fast._lifeline.process_identity`): the worker ends when that process does."""
    import cv2

    import mimic_fast
    from mimic_fast._allocator import retain_freed_memory
    from mimic_fast._lifeline import exit_with

    mimic_fast.set_num_threads(1)
    cv2.setNumThreads(1)
    retain_freed_memory()
    if driver is not None and driver not in _watching:
        exit_with(driver)
        _watching.add(driver)


def candidates(source: Source, cfg: MineConfig, errors: list[dict]) -> Iterator[Candidate]:
    """Every evaluated candidate of a source, in deterministic order; frame-level problems
    are appended to ``errors``."""
    if source.kind == "video":
        yield from ordered_candidates(video_views(source.path, cfg, errors), cfg)
    elif source.kind == "frames":
        yield from ordered_candidates(folder_views(source.path, cfg, cfg.stride, errors), cfg)
    elif source.kind == "group":
        yield from group_candidates(
            list(folder_views(source.path, cfg, 1, errors, source.group)), cfg)
    elif source.kind == "list":
        rows = [(str(a), str(b)) for a, b in read_pair_list(source.path)]
        yield from list_candidates(rows, lambda p, i: view_from_file(p, cfg, i), cfg, errors)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")


def process_source(task: SourceTask) -> dict:
    """Mine a source into ``pairs-NNNNNN.tar`` (if it yields pairs) and its manifest; returns
    the manifest. Failures of the source are recorded in the manifest, not raised."""
    t0 = time.perf_counter()
    out, cfg, source = Path(task.out), task.config, task.source
    errors: list[dict] = []
    rejected: Counter = Counter()
    rows, overlaps, frames, n_candidates = [], [], set(), 0
    writer = ShardWriter(out / shard_name(task.index))
    status, error, shard = "done", None, None
    try:
        for c in candidates(source, cfg, errors):
            for v in (c.v1, c.v2):
                if v is not None:
                    frames.add(v.index)
            n_candidates += 1
            if c.H is not None:
                overlaps.append(round(c.overlap, 6))
            if c.accepted:
                key, members, meta = encode_sample(source, c, cfg)
                rows.append(index_row(meta, shard_name(task.index), writer.add(key, members)))
            else:
                rejected[c.reason] += 1
        shard = writer.commit()
    except Exception as exc:  # a bad source is recorded, never fatal to the run...
        writer.abort()
        if is_out_of_space(exc):  # ...but a full disk is no fault of the source: stop
            raise
        status = "failed"
        error = str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
        log.debug("source %s failed", source.path, exc_info=True)
        rows, overlaps, rejected, n_candidates = [], [], Counter(), 0
    manifest = {
        "index": task.index, "source": source.as_dict(), "status": status, "error": error,
        "shard": shard, **writer.manifest_fields(), "frames": len(frames),
        "candidates": n_candidates,
        "accepted": len(rows), "rejected": dict(sorted(rejected.items())), "errors": errors,
        "pairs": rows, "candidate_overlaps": overlaps,
        "seconds": round(time.perf_counter() - t0, 4),
    }
    write_json_atomic(manifest_path(out, task.index), manifest)
    return manifest


def failed_manifest(task: SourceTask, error: str) -> dict:
    """Manifest for a source whose worker died (written by the driver). A shard of the source
    left by an earlier run is deleted first, as ShardWriter.abort does."""
    (Path(task.out) / shard_name(task.index)).unlink(missing_ok=True)
    manifest = {
        "index": task.index, "source": task.source.as_dict(), "status": "failed",
        "error": error, "shard": None, "frames": 0, "candidates": 0, "accepted": 0,
        "rejected": {}, "errors": [], "pairs": [], "candidate_overlaps": [], "seconds": 0.0,
    }
    write_json_atomic(manifest_path(Path(task.out), task.index), manifest)
    return manifest
