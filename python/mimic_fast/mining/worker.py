"""The units of work: mine ONE source and land its shard and manifest (:func:`process_source`),
or one chunk of a long source (:func:`mimic_fast.mining.chunks.run_chunk`); the engines call
:func:`run_unit` in a pool process, a Ray task, or the driver itself. :class:`SourceShard` is
the one place where a source's formed candidates become its shard, index rows and manifest."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from mimic_fast._output_folder import is_out_of_space
from mimic_fast.io.frames import read_pair_list
from mimic_fast.io.images import FrameError
from mimic_fast.io.sources import Source
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.device import StageServerGone, set_stage_device
from mimic_fast.mining.evaluate import ACCEPTED, Candidate
from mimic_fast.mining.sample import encode_sample
from mimic_fast.mining.samplers import (
    Progress, group_candidates, list_candidates, ordered_candidates,
)
from mimic_fast.mining.views import file_views, folder_views, video_views
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


def init_worker(driver: tuple | None = None, device: str | None = None) -> None:
    """One core per worker: no nested OpenMP / OpenCV threading; and freed heap memory is
    kept for the next frame (see :mod:`mimic_fast._allocator`; in the serial engine this
    applies to the calling process, for good). ``driver`` (a
    :func:`mimic_fast._lifeline.process_identity`): the worker ends when that process does.
    ``device``: where the batched stages run (:mod:`mimic_fast.mining.device`)."""
    import cv2

    import mimic_fast
    from mimic_fast._allocator import retain_freed_memory
    from mimic_fast._lifeline import exit_with

    mimic_fast.set_num_threads(1)
    cv2.setNumThreads(1)
    set_stage_device(device)
    retain_freed_memory()
    if driver is not None and driver not in _watching:
        exit_with(driver)
        _watching.add(driver)


def candidates(source: Source, cfg: MineConfig, errors: list[dict],
               progress: Progress | None = None) -> Iterator[Candidate]:
    """Every evaluated candidate of a source, in deterministic order; frame-level problems
    are appended to ``errors``; ``progress(n)``: n more candidates evaluated."""
    if source.kind == "video":
        yield from ordered_candidates(video_views(source.path, cfg, errors), cfg,
                                      progress=progress)
    elif source.kind == "frames":
        yield from ordered_candidates(folder_views(source.path, cfg, cfg.stride, errors), cfg,
                                      progress=progress)
    elif source.kind == "group":
        yield from group_candidates(
            list(folder_views(source.path, cfg, 1, errors, source.group)), cfg, progress)
    elif source.kind == "list":
        rows = [(str(a), str(b)) for a, b in read_pair_list(source.path)]
        yield from list_candidates(rows, lambda files, errs: list(file_views(files, cfg, errs)),
                                   cfg, errors, progress=progress)
    else:
        raise ValueError(f"unknown source kind {source.kind!r}")


def run_unit(task, progress: Progress | None = None) -> dict:
    """A :class:`SourceTask` -> its manifest; a chunk task -> its part record."""
    if isinstance(task, SourceTask):
        return process_source(task, progress)
    from mimic_fast.mining.chunks import run_chunk

    return run_chunk(task, progress)


class SourceShard:
    """A source's formed candidates, in order -> its shard, index rows, counts, manifest."""

    def __init__(self, task):
        self.task = task
        self.writer = ShardWriter(Path(task.out) / shard_name(task.index))
        self.rows: list[dict] = []
        self.overlaps: list[float] = []
        self.frames: set[int] = set()
        self.candidates = 0
        self.rejected: Counter = Counter()

    def add(self, frames, overlap: float | None, reason: str,
            sample: Callable[[], tuple[str, dict, dict]]) -> None:
        """One formed candidate: its views' frame numbers, its overlap (None: no homography),
        its verdict, and (called only when accepted) its sample's (key, members, json)."""
        self.frames.update(f for f in frames if f is not None)
        self.candidates += 1
        if overlap is not None:
            self.overlaps.append(round(overlap, 6))
        if reason == ACCEPTED:
            key, members, meta = sample()
            self.rows.append(index_row(meta, shard_name(self.task.index),
                                       self.writer.add(key, members)))
        else:
            self.rejected[reason] += 1

    def fail(self) -> None:
        """Drop what was collected (the frame count stays: how far the source got)."""
        self.writer.abort()
        self.rows, self.overlaps, self.rejected, self.candidates = [], [], Counter(), 0

    def manifest(self, status: str, error: str | None, errors: list[dict], shard: str | None,
                 seconds: float) -> dict:
        """Written to ``_done/source-NNNNNN.json`` and returned."""
        task = self.task
        manifest = {
            "index": task.index, "source": task.source.as_dict(), "status": status,
            "error": error, "shard": shard, **self.writer.manifest_fields(),
            "frames": len(self.frames), "candidates": self.candidates,
            "accepted": len(self.rows), "rejected": dict(sorted(self.rejected.items())),
            "errors": errors, "pairs": self.rows, "candidate_overlaps": self.overlaps,
            "seconds": round(seconds, 4),
        }
        write_json_atomic(manifest_path(Path(task.out), task.index), manifest)
        return manifest


def process_source(task: SourceTask, progress: Progress | None = None) -> dict:
    """Mine a source into ``pairs-NNNNNN.tar`` (if it yields pairs) and its manifest; returns
    the manifest. Failures of the source are recorded in the manifest, not raised."""
    t0 = time.perf_counter()
    cfg, source = task.config, task.source
    errors: list[dict] = []
    out = SourceShard(task)
    status, error, shard = "done", None, None
    try:
        for c in candidates(source, cfg, errors, progress):
            out.add([v.index for v in (c.v1, c.v2) if v is not None],
                    c.overlap if c.H is not None else None, c.reason,
                    lambda: encode_sample(source, c, cfg))  # noqa: B023 (called at once)
        shard = out.writer.commit()
    except Exception as exc:  # a bad source is recorded, never fatal to the run...
        out.fail()
        if stops_the_run(exc):  # ...but a full disk or a gone stage server is no fault of
            # the source: stop
            raise
        status = "failed"
        error = str(exc) if isinstance(exc, FrameError) else f"{type(exc).__name__}: {exc}"
        log.debug("source %s failed", source.path, exc_info=True)
    return out.manifest(status, error, errors, shard, time.perf_counter() - t0)


def stops_the_run(exc: BaseException) -> bool:
    """A failure that is no fault of the unit's source, so it must not be recorded as one (a
    plain rerun would skip the source): a full disk, or the stage server gone. The run stops,
    what landed stays, and the same command continues."""
    return is_out_of_space(exc) or isinstance(exc, StageServerGone)


def unit_died(task, error: str) -> dict:
    """The result of a unit whose worker process died (made by the driver): a source is
    recorded as failed; a chunk asks for its source to be mined whole (where a crash again
    names the source)."""
    if isinstance(task, SourceTask):
        return failed_manifest(task, error)
    from mimic_fast.mining.chunks import whole_please

    return whole_please(task, error)


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
