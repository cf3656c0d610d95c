"""``pack``: copy a mined dataset into shards of a chosen number of pairs.

Mining writes one shard per source, which makes a crashed run easy to resume but leaves a
million small files after a million short clips. ``pack`` copies every pair of a finished
dataset, in index order and member for member (the bytes and the fixed tar metadata of the
writer), into ``pairs-NNNNNN.tar`` shards of ``pairs_per_shard`` pairs in a NEW folder:

- ``index.jsonl``: the same rows, "shard" naming the new shard;
- ``config.json``: the original's, plus ``"packed": {"from", "pairs_per_shard"}``. ``mine``
  refuses to add to a packed folder: mine more into the original and pack again;
- ``summary.json``: the original's, with the new shard list;
- ``_done/``: the original's per-source manifests (counts and candidate overlaps, for
  ``stats``; their "shard" fields still name the original shards).

The source folder is only read. Shards are written as mining writes them (temporary file,
rename) and config.json last, so a folder without config.json is an unfinished pack: a new
pack into it clears what the unfinished one left.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

from mimic_fast.mining.dataset import read_index, read_summary
from mimic_fast.mining.writer import (
    DONE_DIR, ShardWriter, remove_stale_temporaries, shard_name, write_bytes_atomic,
    write_json_atomic,
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
    config = json.loads((src / "config.json").read_text())
    summary = read_summary(src)
    _prepare(out, src)

    new_rows: list[dict] = []
    writer = None
    for shard, shard_rows in _by_shard(rows):
        members = _read_shard(src / shard)
        for row in shard_rows:
            if row["key"] not in members:
                raise PackError(f"{src / shard} has no sample {row['key']!r} (listed in "
                                "index.jsonl)")
            if writer is None or writer.samples == pairs_per_shard:
                if writer is not None:
                    writer.commit()
                writer = ShardWriter(out / shard_name(len(new_rows) // pairs_per_shard))
            writer.add(row["key"], members[row["key"]])
            new_rows.append(dict(row, shard=writer.final.name))
    shards = []
    if writer is not None:
        writer.commit()
        shards = sorted({r["shard"] for r in new_rows})

    if (src / DONE_DIR).is_dir():
        shutil.copytree(src / DONE_DIR, out / DONE_DIR)
    lines = [json.dumps(row, separators=(",", ":")) for row in new_rows]
    write_bytes_atomic(out / "index.jsonl", ("\n".join(lines) + "\n" if lines else "").encode())
    summary = dict(summary, shards=shards)
    write_json_atomic(out / "summary.json", summary)
    config["packed"] = {"from": str(src.resolve()), "pairs_per_shard": pairs_per_shard}
    write_json_atomic(out / "config.json", config)  # last: marks the pack finished
    return summary


def _prepare(out: Path, src: Path) -> None:
    """An empty ``out``, or one an unfinished pack left (cleared); anything else is refused."""
    if out.resolve() == src.resolve():
        raise PackError("pack writes a new folder; OUT must differ from the dataset")
    if out.exists():
        if not out.is_dir():
            raise PackError(f"{out} exists and is not a folder")
        if (out / "config.json").exists():
            raise PackError(f"{out} already holds a dataset; pack into a new folder")
        leftovers = [p for p in out.iterdir() if p.name.startswith(("pairs-", ".pairs-"))
                     or p.name in (DONE_DIR, "index.jsonl", "summary.json")
                     or p.name.startswith((".index.jsonl.tmp-", ".summary.json.tmp-"))]
        if len(leftovers) != len(list(out.iterdir())):
            raise PackError(f"{out} is not empty; pack into a new folder")
        remove_stale_temporaries(out)
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


def _read_shard(path: Path) -> dict[str, dict[str, bytes]]:
    """key -> {ext: bytes} in member order, for every sample of a shard."""
    samples: dict[str, dict[str, bytes]] = {}
    try:
        with tarfile.open(path) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, _, ext = m.name.partition(".")
                samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    except (OSError, tarfile.TarError) as exc:
        raise PackError(f"cannot read shard {path}: {exc}") from None
    return samples
