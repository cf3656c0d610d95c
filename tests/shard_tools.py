"""Helpers for data tests: rewrite a mined shard (split it, corrupt a view, export the CSV layout)."""

from __future__ import annotations

import csv
import io
import tarfile
from pathlib import Path


def read_members(shard: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(shard) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile()]


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def samples(dataset: Path) -> list[list[tuple[str, bytes]]]:
    """Samples (lists of members) of every shard, in order."""
    out: list[list[tuple[str, bytes]]] = []
    for shard in sorted(dataset.glob("*.tar")):
        last = None
        for name, data in read_members(shard):
            key = name.split(".", 1)[0]
            if key != last:
                out.append([])
                last = key
            out[-1].append((name, data))
    return out


def split_into_shards(dataset: Path, out: Path, n: int) -> Path:
    """The same pairs in ``n`` shards (round-robin)."""
    out.mkdir(parents=True, exist_ok=True)
    groups = samples(dataset)
    for k in range(n):
        write_tar(out / f"pairs-{k:06d}.tar", [m for s in groups[k::n] for m in s])
    return out


def export_csv_layout(dataset: Path, out: Path) -> Path:
    """The published layout: out/<scene>/<pair>/0000.jpg, 0001.jpg, corresponding.npy + pairs.csv."""
    import numpy as np

    rows = []
    for i, sample in enumerate(samples(dataset)):
        d = dict((name.split(".", 1)[1], data) for name, data in sample)
        pair = out / "scene" / f"{i:04d}"
        pair.mkdir(parents=True)
        (pair / "0000.jpg").write_bytes(d["0.jpg"])
        (pair / "0001.jpg").write_bytes(d["1.jpg"])
        np.save(pair / "corresponding.npy", np.zeros((1, 2), np.int64))
        rows.append((f"scene/{i:04d}/0000.jpg", f"scene/{i:04d}/0001.jpg"))
    with open(out / "pairs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path1", "path2"])
        w.writerows(rows)
    return out / "pairs.csv"


def member_offsets(shard: Path) -> list[tuple[str, int, int, int]]:
    """(name, header offset, data offset, size) of every member, in order."""
    with tarfile.open(shard) as tar:
        return [(m.name, m.offset, m.offset_data, m.size) for m in tar]


def damage(shard: Path, how: str, sample: int) -> None:
    """Damage a shard of 3-member samples in place at sample ``sample``: "header" garbles
    the tar header of its first member, "boundary" cuts the file just before that header
    (a truncation at a member boundary), "flip" inverts 16 bytes inside its 0.jpg."""
    name, header, data, size = member_offsets(shard)[3 * sample]
    assert name.endswith(".0.jpg"), name
    with open(shard, "r+b") as f:
        if how == "header":
            f.seek(header)
            f.write(b"\xa5" * 100)  # the name field: the header checksum no longer matches
        elif how == "boundary":
            f.truncate(header)
        elif how == "flip":
            f.seek(data + size // 2)
            chunk = f.read(16)
            f.seek(data + size // 2)
            f.write(bytes(b ^ 0xFF for b in chunk))
        else:
            raise ValueError(how)
