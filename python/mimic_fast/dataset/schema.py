"""The pair dataset on disk ("mimic-fast-pairs", version 1): the one definition.

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
                             "pairs_per_shard"}; see :mod:`mimic_fast.dataset.pack`.)
    DIR/index.jsonl          one JSON object per pair, ordered by source index, then by frames:
                             {"key", "shard", "source", "kind", "frames": [i, j], "overlap",
                             "inliers", "matches", and the integrity record (below):
                             "sha256", "shard_members", "shard_bytes", "shard_sha256"}.
    DIR/summary.json         counts of the whole dataset (see :func:`mimic_fast.dataset.writer.finalize`):
                             sources, sources_done, sources_failed, sources_skipped (finished
                             by an earlier run), sources_pending (not finished: a stopped run),
                             frames, candidates, accepted, rejected {reason: count},
                             errors [{input, error}], shards [names], seconds (this run's wall
                             time), candidates_per_second (candidates computed by this run /
                             seconds), engine, workers.
    DIR/_done/source-NNNNNN.json  per-source manifest ("done" or "failed"), written after the
                             source's shard is in place (a failed source has no shard: any
                             earlier one is deleted first); what reruns skip on. Holds the
                             source's counts, errors, index rows ("pairs", each with its
                             "sha256"), the shard's "shard_members", "shard_bytes" and
                             "shard_sha256" (null without a shard) and every candidate's
                             overlap (stats).
    DIR/_parts/              while mining only: the parts of sources split into chunks
                             (:mod:`mimic_fast.mining.chunks`), reused by a rerun, removed when
                             every source has landed; never read as data.

Each sample in a shard is three tar members, in this order, with key
``<source id>-<frame i, 6+ digits>-<frame j, 6+ digits>`` (source id = 16 hex digits of
sha1("<kind>:<absolute path>"); no dots, so WebDataset splits ``key.ext`` correctly):

    <key>.0.jpg   view 1, RGB, size x size (224x224 by default), JPEG quality 95 (config)
    <key>.1.jpg   view 2, same
    <key>.json    {"key", "source" (absolute path), "kind" (video|frames|group|list|import),
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

Integrity record (written by :class:`~mimic_fast.dataset.writer.ShardWriter` while it writes;
checked by every reader, :mod:`mimic_fast.dataset.verify` checks all of it):

    "sha256"         of the sample: sha256 of its members' bytes (payloads only, no tar
                     headers) concatenated in tar order (0.jpg, 1.jpg, json)
    "shard_members"  tar members in the shard (3 per sample)
    "shard_bytes"    size of the shard file
    "shard_sha256"   sha256 of the shard file's bytes

These fields were added without a version bump: a reader needs none of them to read a
dataset, and a dataset written before them (no such fields) stays readable; its shards
are checked for their tar structure only ("no hashes recorded").

Crash safety: a shard is written to ``.pairs-NNNNNN.tar.tmp-*`` and renamed when complete;
the manifest is written the same way afterwards; index.jsonl and summary.json are rewritten
(atomically) from all manifests at the end of each run.
"""

from __future__ import annotations

import re
from pathlib import Path

FORMAT = "mimic-fast-pairs"
FORMAT_VERSION = 1

CONFIG = "config.json"
INDEX = "index.jsonl"
SUMMARY = "summary.json"
DONE_DIR = "_done"

# Extensions of the two views, by view; every reader (index, stream, DALI) takes these.
VIEW_EXTS = (("0.jpg", "0.jpeg", "0.png"), ("1.jpg", "1.jpeg", "1.png"))
META_EXT = "json"
# Members of a sample as the writers write them, in this order.
MEMBER_EXTS = ("0.jpg", "1.jpg", META_EXT)

# The sample's json (see the module docstring), in the order mining writes it.
SAMPLE_FIELDS = ("key", "source", "kind", "frames", "times", "paths", "original_size",
                 "image_size", "patch_size", "resize", "H", "overlap", "counts",
                 "correspondences", "inliers", "matches", "keypoints")
# An index row: the pair's fields, then its shard, then the integrity record.
ROW_FIELDS = ("key", "source", "kind", "frames", "overlap", "inliers", "matches", "shard")
SHARD_RECORD_FIELDS = ("shard_members", "shard_bytes", "shard_sha256")
SAMPLE_HASH_FIELD = "sha256"

# <source id, 16 hex digits>-<frame i, 6+ digits>-<frame j, 6+ digits>
KEY_PATTERN = re.compile(r"([0-9a-f]{16})-([0-9]{6,})-([0-9]{6,})")


def config_header() -> dict:
    """The first two fields of every dataset's config.json."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION}


def shard_name(index: int) -> str:
    return f"pairs-{index:06d}.tar"


def manifest_path(out: Path, index: int) -> Path:
    return Path(out) / DONE_DIR / f"source-{index:06d}.json"


def sample_key(source_id: str, i: int, j: int) -> str:
    return f"{source_id}-{i:06d}-{j:06d}"


def parse_key(key: str) -> tuple[str, int, int]:
    """(source id, frame i, frame j) of a pair key; ValueError when it is not one."""
    m = KEY_PATTERN.fullmatch(key)
    if m is None:
        raise ValueError(f"sample key {key!r} is not a pair key (<16 hex>-<frame>-<frame>)")
    return m[1], int(m[2]), int(m[3])


def check_member_key(key: str) -> None:
    """A key a tar member can carry: no '.' (it starts the extension) and no '/'."""
    if not key or "." in key or "/" in key:
        raise ValueError(f"sample key {key!r} is not a pair key: a key may not be empty or "
                         "contain '.' or '/'")


def split_key(name: str) -> tuple[str, str]:
    """WebDataset convention: ``dir/base.ext.ext`` -> (``dir/base``, ``ext.ext``)."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (folder + "/" + stem if folder else stem), (ext if dot else "")


def view_of(ext: str) -> int | None:
    """0 or 1 when ``ext`` names a view, else None."""
    ext = ext.lower()
    for v in range(2):
        if ext in VIEW_EXTS[v]:
            return v
    return None


def index_row(meta: dict, shard: str, sha256: str | None) -> dict:
    """The index row of a sample from its json (before the shard's record is known)."""
    row = {k: meta[k] for k in ROW_FIELDS[:-1]}
    row["shard"] = shard
    if sha256 is not None:
        row[SAMPLE_HASH_FIELD] = sha256
    return row
