"""The mined dataset on disk: format, and crash-safe writing.

Layout of a dataset folder ``DIR`` (everything a reader needs is in the tar shards and
``index.jsonl``; the rest is bookkeeping)::

    DIR/config.json          what was asked: {"format": "mimic-fast-pairs", "format_version": 1,
                             "mimic_fast_version", "mining": MineConfig fields, "inputs": [...],
                             "sources": [{"index", "path", "kind", "id"}, ...], "run": RunOptions
                             of the first run}. A rerun into DIR must resolve to the same
                             "mining" and "sources", or it is refused.
    DIR/pairs-NNNNNN.tar     one WebDataset shard per source that yielded at least one pair;
                             NNNNNN = the source's index in config.json "sources" (zero-padded,
                             6 digits), so numbers have gaps where a source gave no pair.
                             (``mimic-fast pack`` copies a dataset into shards of N pairs
                             numbered 0, 1, ...; config.json then has "packed": {"from",
                             "pairs_per_shard"}; see :mod:`mimic_fast.mining.pack`.)
    DIR/index.jsonl          one JSON object per pair, ordered by source index, then by frames:
                             {"key", "shard", "source", "kind", "frames": [i, j], "overlap",
                             "inliers", "matches"}.
    DIR/summary.json         counts of the whole dataset (see :func:`mimic_fast.mining.run.mine`):
                             sources, sources_done, sources_failed, sources_skipped (finished
                             by an earlier run), sources_pending (not finished: a stopped run),
                             frames, candidates, accepted, rejected {reason: count},
                             errors [{input, error}], shards [names], seconds (this run's wall
                             time), candidates_per_second (candidates computed by this run /
                             seconds), engine, workers.
    DIR/_done/source-NNNNNN.json  per-source manifest ("done" or "failed"), written after the
                             source's shard is in place (a failed source has no shard: any
                             earlier one is deleted first); what reruns skip on. Holds the
                             source's counts, errors, index rows and every candidate's overlap
                             (stats).

Each sample in a shard is three tar members, in this order, with key
``<source id>-<frame i, 6+ digits>-<frame j, 6+ digits>`` (source id = 16 hex digits of
sha1("<kind>:<absolute path>"); no dots, so WebDataset splits ``key.ext`` correctly):

    <key>.0.jpg   view 1, RGB, size x size (224x224 by default), JPEG quality 95 (config)
    <key>.1.jpg   view 2, same
    <key>.json    {"key", "source" (absolute path), "kind" (video|frames|group|list),
                   "frames": [i, j] (presentation indices for a video; positions in the
                   name-sorted folder for frames/group; first-appearance positions for a list),
                   "times": [t_i, t_j] presentation times in seconds (video) or null,
                   "paths": [p_i, p_j] image files (frames/group/list) or null,
                   "original_size": [[h, w], [h, w]] frames at full resolution (image
                        files: as decoded, EXIF rotation applied; a large JPEG's size even
                        when it was decoded at 1/2..1/8), before resizing,
                   "image_size": [h, w] of the stored views, "patch_size": 16,
                   "resize": "squash"|"crop",
                   "H": 3x3 list, maps view-1 (0.jpg) pixel (x, y) to view-2 (1.jpg) pixel,
                        in the stored views' coordinates, H[2][2] = 1,
                   "overlap": min(counts) / P (P = patches per view, 196),
                   "counts": [forward, backward] matched patches,
                   "correspondences": [[view-1 patch, view-2 patch], ...] one-to-one, sorted
                        by view-1 patch, len = min(counts) = overlap * P; patch index =
                        row * (size // patch_size) + col,
                   "inliers": RANSAC inliers, "matches": ratio-test matches,
                   "keypoints": [n1, n2] SIFT keypoints per view}

H and the correspondences were computed on the exact pixels before JPEG encoding; the stored
JPEGs differ from them by compression noise only (quality 95: a few grey levels), which
moves nothing by a pixel. Tar members have fixed metadata (mtime 0, uid/gid 0, mode 0644,
USTAR), so the same inputs and settings give byte-identical shards. Read with plain
``webdataset.WebDataset(urls)`` (fields "0.jpg", "1.jpg", "json") or ``tar -xf``.

Crash safety: a shard is written to ``.pairs-NNNNNN.tar.tmp-*`` and renamed when complete;
the manifest is written the same way afterwards; index.jsonl and summary.json are rewritten
(atomically) from all manifests at the end of each run.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path

FORMAT = "mimic-fast-pairs"
FORMAT_VERSION = 1
DONE_DIR = "_done"


def shard_name(index: int) -> str:
    return f"pairs-{index:06d}.tar"


def manifest_path(out: Path, index: int) -> Path:
    return Path(out) / DONE_DIR / f"source-{index:06d}.json"


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary sibling, fsync, rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, obj) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())


def remove_stale_temporaries(out: Path) -> int:
    """Delete temporary files left by a killed run; returns how many."""
    n = 0
    for folder in (Path(out), Path(out) / DONE_DIR):
        if folder.is_dir():
            for p in folder.glob(".*.tmp-*"):
                p.unlink(missing_ok=True)
                n += 1
    return n


class ShardWriter:
    """One source's shard: samples are streamed into a temporary tar, which ``commit``
    renames to its final name (or deletes, with any stale final shard, if it got no sample);
    ``abort`` deletes both too.
    """

    def __init__(self, final_path: Path):
        self.final = Path(final_path)
        self.tmp = _tmp_name(self.final)
        self._file = open(self.tmp, "wb")
        self._tar = tarfile.open(fileobj=self._file, mode="w", format=tarfile.USTAR_FORMAT)
        self.samples = 0

    def add(self, key: str, members: dict[str, bytes]) -> None:
        """Append one sample: ``members`` maps extensions ("0.jpg", "json") to bytes, written
        in the given order as ``key.ext``."""
        if "." in key or "/" in key:
            raise ValueError(f"sample keys may not contain '.' or '/', got {key!r}")
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
        self.samples += 1

    def commit(self) -> str | None:
        """Finish the shard; returns its file name, or None when it holds no sample."""
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.samples == 0:
            self.tmp.unlink(missing_ok=True)
            self.final.unlink(missing_ok=True)
            return None
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        return self.final.name

    def abort(self) -> None:
        """Drop the shard of a failed source, and any final shard an earlier run left (a run
        killed between the shard's rename and its manifest): readers take every pairs-*.tar,
        so none may stay without a "done" manifest."""
        try:
            self._tar.close()
            self._file.close()
        finally:
            self.tmp.unlink(missing_ok=True)
            self.final.unlink(missing_ok=True)
