"""The order in which parallel engines hand out sources: largest first.

A run ends when its last source does, so a big video started last keeps one worker busy
while the others idle. Handing out the largest sources first (LPT scheduling) leaves only
small ones for the end. Work is estimated by input bytes: a video's file size, a folder's
image bytes. On the generated bench_mining input the bytes of a frame folder correlate 0.91
with its mining time (JPEG size follows texture, and so does the SIFT keypoint count). A
CSV list names images elsewhere, so its size says nothing: lists go first. The order
changes nothing in the dataset: shards are named by source index. A chunk of a source
(:mod:`.chunks`) counts for its share of the source's positions; a source's chunks go out in
order (its shard can be assembled once its last chunk is in).
"""

from __future__ import annotations

import os

from mimic_fast.io.images import is_image_path
from mimic_fast.io.sources import Source, group_members


def input_bytes(source: Source, group_by: str | None = None) -> float:
    """Bytes a source reads (0 when it cannot be read: it will fail fast anyway; infinite
    for a CSV list, whose work is unknown until its images are read). ``group_by``: the
    pattern that made ``source.group``."""
    if source.kind == "list":
        return float("inf")
    try:
        if source.group is not None:
            return sum(p.stat().st_size for p in group_members(source.path, group_by)[source.group])
        if source.kind in ("frames", "group"):
            with os.scandir(source.path) as entries:
                return sum(e.stat().st_size for e in entries
                           if is_image_path(e.name) and e.is_file())
        return os.stat(source.path).st_size
    except OSError:
        return 0


def largest_first(tasks: list) -> list:
    """``tasks`` (anything with ``.source`` and ``.index``; chunks with ``.number``, ``.work``
    and ``.positions``) by estimated work, largest first; ties keep index (and chunk) order."""
    sizes: dict = {}  # a source's bytes, read once for all its chunks

    def work(t) -> float:
        if t.source not in sizes:
            grouped = t.source.group is not None  # then t has the config that grouped it
            sizes[t.source] = input_bytes(t.source, t.config.group_by if grouped else None)
        share = getattr(t, "work", None)  # a chunk: its share of the source's positions
        return sizes[t.source] * (1 if share is None else share / max(t.positions - 1, 1))

    return sorted(tasks, key=lambda t: (-work(t), t.index, getattr(t, "number", 0)))
