"""Work units smaller than a source: a long video or frame folder split into chunks, so that
several workers (processes or Ray tasks) share it, with the dataset of the unsplit source.

A source's walk positions (its samples: a video's sample times, a folder's every
``stride``-th image) are planned without decoding (:func:`plan_source`: the folder listing,
the video's demux). Chunk k evaluates the candidates (i, i+1) for i in its range [start,
stop), and the (i, i+2) the walk may need for those i, so it decodes positions start ..
stop + 1 (two more than its range; never more than ``samplers.CHUNK + 2`` views at a time).
It writes every verdict, and the encoded sample of every accepted one, to a part
(``DIR/_parts/source-NNNNNN/chunk-KKKKKK.json`` and ``.bin``; the json lands last, so a part
is complete or absent). Verdicts do not depend on the batch they were computed in, so when
all parts of a source are there, :func:`assemble` resolves the published walk over them
(:class:`~mimic_fast.mining.samplers.OrderedWalk`), drops what the walk skips, and writes the
source's shard and manifest through :class:`~mimic_fast.mining.worker.SourceShard`: the same
bytes, in the same order, as mining the source in one piece. Parts of a killed run are
reused by the next one when they cover the same range; ``_parts`` is removed once every
source has landed.

Anything irregular in a chunk (an unreadable frame, a video that ends early or whose frames
cannot be identified after a seek, see :func:`mimic_fast.io.video.decode_span`) makes the
chunk answer "whole": the source is then mined in one piece by
:func:`~mimic_fast.mining.worker.process_source`, which records such problems as it always
does. So a split source gives exactly the unsplit dataset, errors included.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from mimic_fast.dataset.schema import MEMBER_EXTS
from mimic_fast.dataset.writer import write_atomic, write_json_atomic
from mimic_fast.io.frames import read_pair_list
from mimic_fast.io.images import FrameError
from mimic_fast.io.sources import Source
from mimic_fast.io.video import NotSeekable, VideoSpan, plan_video
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.evaluate import ACCEPTED

log = logging.getLogger(__name__)
PARTS_DIR = "_parts"
MIN_HALF = 8  # positions: the smallest chunk chunk_bounds makes by halving one


@dataclass(frozen=True)
class ChunkTask:
    out: str  # dataset folder
    index: int  # the source's position in the run's sorted source list
    source: Source
    config: MineConfig
    number: int  # the chunk's position among its source's chunks
    start: int  # the chunk evaluates (i, i+1) and (i, i+2) for start <= i < stop
    stop: int
    positions: int  # the source's walk positions
    span: VideoSpan | None = None  # video: the samples start .. stop + 1
    files: tuple[tuple[int, str], ...] = ()  # frame folder: (frame index, path) of them

    @property
    def work(self) -> int:
        """Candidates (i, i+1) it evaluates (progress counts these)."""
        return self.stop - self.start


@dataclass(frozen=True)
class Plan:
    estimate: int  # candidates (i, i+1), group pairs or list rows the source evaluates
    chunks: list[ChunkTask]  # empty: mined in one piece


def plan_source(task, chunk: int, workers: int = 1) -> Plan:
    """How ``task`` (a SourceTask) is mined: split into chunks of at most ``chunk`` positions
    when it has more than that (videos and frame folders; ``chunk`` 0: never), into equal
    chunks whose number is a multiple of ``workers`` (a lone long source then keeps every
    worker busy to the end); and its estimated work. Problems found here are left to the
    unsplit mining, which records them."""
    source, cfg = task.source, task.config
    try:
        if source.kind == "video":
            plan = plan_video(source.path, cfg.interval)
            n = len(plan.samples)
            # chunks decode with PyAV: a video for DALI is decoded whole
            spans = plan.span if plan.splittable and cfg.decoder == "opencv" else None
            files = None
        elif source.kind == "frames":
            from mimic_fast.mining.views import folder_files

            files = [(i, str(p)) for i, p in enumerate(folder_files(source.path, cfg))]
            files = files[:: cfg.stride]
            n, spans = len(files), None
        elif source.kind == "group":
            from mimic_fast.mining.views import folder_files

            n = len(folder_files(source.path, cfg, source.group))
            return Plan(n * (n - 1) // 2, [])
        else:
            return Plan(len(read_pair_list(source.path)), [])
    except (FrameError, OSError, ValueError, RuntimeError):
        return Plan(0, [])
    estimate = max(n - 1, 0)
    if chunk <= 0 or estimate <= chunk or (source.kind == "video" and spans is None):
        return Plan(estimate, [])
    bounds = chunk_bounds(estimate, chunk, workers)
    chunks = []
    for number, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        last = min(stop + 2, n)  # views start .. stop + 1
        chunks.append(ChunkTask(
            task.out, task.index, source, cfg, number, start, stop, n,
            span=spans(start, last) if spans is not None else None,
            files=tuple(files[start:last]) if files is not None else ()))
    return Plan(estimate, chunks)


def chunk_bounds(positions: int, chunk: int, workers: int) -> list[int]:
    """Where the chunks of ``positions`` walk positions start, and the end: equal chunks of at
    most ``chunk`` (the larger ones first: the engines hand a source's chunks out in order,
    largest first), as many as a multiple of ``workers``; with several workers the last
    ``workers`` of them are halved (when that leaves :data:`MIN_HALF` positions each: a
    chunk costs the decode of two extra views and a seek), so that the run's tail, where one
    worker finishes its last chunk while the others idle, lasts half a chunk."""
    count = -(-positions // chunk)
    count = min(-(-count // workers) * workers, positions)
    sizes = [positions // count + (k < positions % count) for k in range(count)]
    if workers > 1 and sizes[-1] >= 2 * MIN_HALF:
        tail = [half for size in sizes[count - workers:] for half in (size - size // 2, size // 2)]
        sizes = sizes[:count - workers] + sorted(tail, reverse=True)
    return [sum(sizes[:k]) for k in range(len(sizes) + 1)]


def part_paths(out: str | Path, index: int, number: int) -> tuple[Path, Path]:
    folder = Path(out) / PARTS_DIR / f"source-{index:06d}"
    return folder / f"chunk-{number:06d}.json", folder / f"chunk-{number:06d}.bin"


def _views(task: ChunkTask):
    """The chunk's views; any FrameError raises (the source is then mined whole)."""
    from mimic_fast.mining.views import file_views, span_views

    if task.span is not None:
        return span_views(task.span, task.config)
    return file_views(list(task.files), task.config)


def run_chunk(task: ChunkTask, progress=None) -> dict:
    """Evaluate a chunk and land its part; returns the part record (status "done"), or a
    "whole" record when the source must be mined in one piece."""
    from mimic_fast.mining.sample import encode_sample
    from mimic_fast.mining.samplers import ordered_verdicts

    t0 = time.perf_counter()
    record_path, data_path = part_paths(task.out, task.index, task.number)
    verdicts: list[dict] = []

    def write(f) -> None:
        offset = 0
        rounds = ordered_verdicts(_views(task), task.config, task.start, task.stop,
                                  progress=progress)
        for new, _, _ in rounds:
            for (i, j), c in sorted(new.items()):
                v = {"i": i, "j": j, "reason": c.reason,
                     "overlap": c.overlap if c.H is not None else None,
                     "frames": [c.v1.index, c.v2.index]}
                if c.accepted:
                    key, members, meta = encode_sample(task.source, c, task.config)
                    sizes = [len(members[e]) for e in MEMBER_EXTS]
                    for e in MEMBER_EXTS:
                        f.write(members[e])
                    v["sample"] = {"key": key, "json": meta, "offset": offset, "sizes": sizes}
                    offset += sum(sizes)
                verdicts.append(v)

    try:
        write_atomic(data_path, write)
        if sum(v["i"] + 1 == v["j"] for v in verdicts) != task.work:
            raise NotSeekable(f"{len(verdicts)} verdicts for {task.work} positions")
    except (FrameError, NotSeekable) as exc:
        data_path.unlink(missing_ok=True)
        return whole_please(task, str(exc))
    except Exception as exc:
        data_path.unlink(missing_ok=True)
        from mimic_fast.mining.worker import stops_the_run

        if stops_the_run(exc):
            raise
        log.debug("chunk %d of %s failed", task.number, task.source.path, exc_info=True)
        return whole_please(task, f"{type(exc).__name__}: {exc}")
    record = {**_identity(task), "status": "done", "verdicts": verdicts,
              "data_bytes": data_path.stat().st_size,
              "seconds": round(time.perf_counter() - t0, 4)}
    write_json_atomic(record_path, record)
    return record


def whole_please(task: ChunkTask, reason: str) -> dict:
    """The record of a chunk that cannot stand for its part of the source."""
    return {**_identity(task), "status": "whole", "reason": reason}


def _identity(task: ChunkTask) -> dict:
    return {"chunk": task.number, "index": task.index, "source_id": task.source.id,
            "start": task.start, "stop": task.stop}


def landed_part(task: ChunkTask) -> dict | None:
    """The part an earlier run landed for exactly this chunk, if whole and readable."""
    record_path, data_path = part_paths(task.out, task.index, task.number)
    try:
        record = json.loads(record_path.read_text())
        if (record.get("status") != "done"
                or {k: record.get(k) for k in _identity(task)} != _identity(task)
                or data_path.stat().st_size != record["data_bytes"]):
            return None
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


class _Verdict:
    """A part's verdict as :class:`~mimic_fast.mining.samplers.OrderedWalk` reads it."""

    def __init__(self, entry: dict, number: int):
        self.entry, self.number = entry, number
        self.reason, self.overlap = entry["reason"], entry["overlap"]

    @property
    def accepted(self) -> bool:
        return self.reason == ACCEPTED


def assemble(task, parts: list[dict]) -> dict:
    """The source's shard and manifest from the parts of all its chunks (``task``: its
    SourceTask); the same bytes as :func:`~mimic_fast.mining.worker.process_source` gives."""
    from mimic_fast.mining.samplers import OrderedWalk
    from mimic_fast.mining.worker import SourceShard

    t0 = time.perf_counter()
    positions = max(p["stop"] for p in parts) + 1
    verdicts = {}
    for part in parts:
        for entry in part["verdicts"]:
            verdicts[(entry["i"], entry["j"])] = _Verdict(entry, part["chunk"])
    walk = OrderedWalk(task.config)
    try:
        formed = walk.advance(verdicts, positions - 1, final=True)
    except KeyError as exc:  # an (i, i+2) the walk needs is in no part
        raise ValueError(f"no part has the verdict of {exc.args[0]}") from None
    if walk.pos < positions - 1:
        raise ValueError(f"the parts stop at position {walk.pos} of {positions}")
    out = SourceShard(task)
    files: dict[int, object] = {}
    try:
        for v in formed:
            out.add(v.entry["frames"], v.overlap, v.reason,
                    lambda: _sample(v, files, task))  # noqa: B023 (called at once)
        shard = out.writer.commit()
    except BaseException:
        out.fail()
        raise
    finally:
        for f in files.values():
            f.close()
    seconds = sum(p["seconds"] for p in parts) + time.perf_counter() - t0
    return out.manifest("done", None, [], shard, seconds)


def _sample(v: _Verdict, files: dict, task) -> tuple[str, dict, dict]:
    s = v.entry["sample"]
    if v.number not in files:
        files[v.number] = open(part_paths(task.out, task.index, v.number)[1], "rb")
    f = files[v.number]
    f.seek(s["offset"])
    members = {e: f.read(n) for e, n in zip(MEMBER_EXTS, s["sizes"])}
    if [len(b) for b in members.values()] != s["sizes"]:
        raise ValueError(f"part {v.number} of source {task.index} is shorter than recorded")
    return s["key"], members, s["json"]


def remove_parts(out: str | Path, index: int | None = None) -> None:
    """Delete a source's parts (``index``), or all of them."""
    folder = Path(out) / PARTS_DIR
    shutil.rmtree(folder if index is None else folder / f"source-{index:06d}",
                  ignore_errors=True)


def part_folders(out: str | Path) -> list[Path]:
    folder = Path(out) / PARTS_DIR
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
