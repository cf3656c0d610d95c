"""``pack``: copy a mined dataset into shards of a chosen number of pairs.

Mining writes one shard per source, which makes a crashed run easy to resume but leaves a
million small files after a million short clips. ``pack`` copies every pair of a finished
dataset, in index order and member for member (the bytes and the fixed tar metadata of the
writer), into ``pairs-NNNNNN.tar`` shards of ``pairs_per_shard`` pairs in a NEW folder:

- ``index.jsonl``: the same rows, "shard" naming the new shard, with the new shards'
  integrity records (the samples' sha256 are unchanged: their bytes are);
- ``config.json``: the original's, plus ``"packed": {"from", "pairs_per_shard"}``. ``mine``
  refuses to add to a packed folder: mine more into the original and pack again;
- ``summary.json``: the original's, with the new shard list;
- ``_done/``: the original's per-source manifests (counts and candidate overlaps, for
  ``stats``; their "shard" fields still name the original shards).

The source folder is only read, and checked as it is read: a shard or pair that differs from
what its index records stops the pack (PackError naming it; ``mimic-fast verify`` says more).
Shards are written as mining writes them (temporary file,
rename) and config.json last, so a folder without config.json is an unfinished pack: a new
pack into it clears what the unfinished one left.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mimic_fast._output_folder import LOCK_NAME, FolderLock, remove_dead_temporaries
from mimic_fast.dataset.errors import DataError
from mimic_fast.dataset.reader import (
    iter_shard_samples, read_index, read_records, read_summary, sample_sha256,
)
from mimic_fast.dataset.schema import CONFIG, DONE_DIR, INDEX, SAMPLE_HASH_FIELD, SUMMARY, shard_name
from mimic_fast.dataset.writer import (
    ShardWriter, index_lines, write_atomic, write_json_atomic,
)


class PackError(RuntimeError):
    """The dataset cannot be packed as asked (the message says why)."""


def pack(dataset: str | Path, out: str | Path, pairs_per_shard: int = 1000) -> dict:
    """Pack ``dataset`` into ``out``; returns the new summary."""
    src, out = Path(dataset), Path(out)
    if pairs_per_shard < 1:
        raise ValueError(f"pairs_per_shard must be >= 1, got {pairs_per_shard}")
    if not (src / "config.json").is_file():
        raise PackError(f"{src} is not a mined dataset (no config.json)")
    rows = read_index(src)
    records = read_records(src) or {}
    config = json.loads((src / CONFIG).read_text())
    summary = read_summary(src)
    if out.exists() and not out.is_dir():
        raise PackError(f"{out} exists and is not a folder")
    with FolderLock(out):  # one writer per folder
        return _pack_locked(src, out, rows, records, config, summary, pairs_per_shard)


def _pack_locked(src: Path, out: Path, rows: list[dict], records: dict, config: dict,
                 summary: dict, pairs_per_shard: int) -> dict:
    _prepare(out, src)

    done: list[tuple[list[dict], dict]] = []  # (rows, shard record) of each new shard
    pending: list[dict] = []
    writer = None

    def close_shard():
        writer.commit()
        done.append((pending[:], writer.record))
        pending.clear()

    for shard, shard_rows in _by_shard(rows):
        members = _read_shard(src / shard, records.get(Path(shard).name))
        for row in shard_rows:
            if row["key"] not in members:
                raise PackError(f"{src / shard} has no sample {row['key']!r} (listed in "
                                "index.jsonl)")
            if writer is None or writer.samples == pairs_per_shard:
                if writer is not None:
                    close_shard()
                writer = ShardWriter(out / shard_name(sum(len(r) for r, _ in done)
                                                      // pairs_per_shard))
            sha = writer.add(row["key"], members[row["key"]])
            pending.append(dict(row, shard=writer.final.name, **{SAMPLE_HASH_FIELD: sha}))
    if writer is not None:
        close_shard()
    shards = [rows_[0]["shard"] for rows_, _ in done]

    if (src / DONE_DIR).is_dir():
        shutil.copytree(src / DONE_DIR, out / DONE_DIR)
    write_atomic(out / INDEX, index_lines(
        ([{k: v for k, v in r.items() if not k.startswith("shard_")} for r in rows_], record)
        for rows_, record in done))
    summary = dict(summary, shards=shards)
    write_json_atomic(out / SUMMARY, summary)
    config["packed"] = {"from": str(src.resolve()), "pairs_per_shard": pairs_per_shard}
    write_json_atomic(out / CONFIG, config)  # last: marks the pack finished
    return summary


def _prepare(out: Path, src: Path) -> None:
    """An empty ``out``, or one an unfinished pack left (cleared); anything else is refused."""
    if out.resolve() == src.resolve():
        raise PackError("pack writes a new folder; OUT must differ from the dataset")
    if out.exists():
        if (out / "config.json").exists():
            raise PackError(f"{out} already holds a dataset; pack into a new folder")
        leftovers = [p for p in out.iterdir() if p.name.startswith(("pairs-", ".pairs-"))
                     or p.name in (DONE_DIR, "index.jsonl", "summary.json")
                     or p.name.startswith((".index.jsonl.tmp-", ".summary.json.tmp-"))]
        if len(leftovers) != len([p for p in out.iterdir() if p.name != LOCK_NAME]):
            raise PackError(f"{out} is not empty; pack into a new folder")
        remove_dead_temporaries(out, out / DONE_DIR)
        for p in leftovers:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)


def _by_shard(rows: list[dict]):
    """(shard, its rows) in index order; a shard must appear as one run of rows."""
    groups: list[tuple[str, list[dict]]] = []
    for row in rows:
        if groups and groups[-1][0] == row["shard"]:
            groups[-1][1].append(row)
        else:
            groups.append((row["shard"], [row]))
    names = [g[0] for g in groups]
    if len(set(names)) != len(names):
        raise PackError("index.jsonl lists a shard in more than one run of rows; not a "
                        "dataset written by mimic-fast")
    return groups


def _read_shard(path: Path, record) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} in member order, for every sample of a shard, checked against
    the shard's ``record`` (when the index has one)."""
    samples: dict[str, dict[str, bytes]] = {}
    members = 0
    try:
        for key, ms in iter_shard_samples(path):
            members += len(ms)
            sha = record.pairs.get(key) if record is not None else None
            if sha is not None and sample_sha256(m.data for m in ms) != sha:
                raise PackError(f"shard {path}: pair {key} does not match its recorded sha256 "
                                "(damaged; see mimic-fast verify)")
            samples.setdefault(key, {}).update((m.ext, m.data) for m in ms)
    except (OSError, DataError) as exc:
        raise PackError(f"cannot read shard {path}: {exc}") from None
    if record is not None and record.members is not None and members != record.members:
        raise PackError(f"shard {path} holds {members} tar members, its index records "
                        f"{record.members} (damaged; see mimic-fast verify)")
    return samples
