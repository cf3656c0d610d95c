"""Reading a mined dataset back (plain tarfile; training uses webdataset): index rows,
single samples by key, all samples in index order."""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class PairSample:
    key: str
    view1: np.ndarray  # [h, w, 3] uint8 RGB (0.jpg)
    view2: np.ndarray  # (1.jpg)
    meta: dict  # the sample's json
    jpeg1: bytes
    jpeg2: bytes


def read_index(dataset: str | Path) -> list[dict]:
    path = Path(dataset) / "index.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{dataset} is not a mined dataset (no index.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_summary(dataset: str | Path) -> dict:
    return json.loads((Path(dataset) / "summary.json").read_text())


def decode_jpeg(data: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("cannot decode a stored JPEG")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_sample(dataset: str | Path, key: str) -> PairSample:
    """The sample ``key`` (KeyError naming it if the index has no such key)."""
    rows = [r for r in read_index(dataset) if r["key"] == key]
    if not rows:
        raise KeyError(f"no pair with key {key!r} in {dataset}")
    with tarfile.open(Path(dataset) / rows[0]["shard"]) as tar:
        return _sample(tar, key)


def iter_samples(dataset: str | Path) -> Iterator[PairSample]:
    """Every sample, in index order (shard by shard)."""
    rows = read_index(dataset)
    by_shard: dict[str, list[str]] = {}
    for r in rows:
        by_shard.setdefault(r["shard"], []).append(r["key"])
    for shard, keys in by_shard.items():
        with tarfile.open(Path(dataset) / shard) as tar:
            for key in keys:
                yield _sample(tar, key)


def _sample(tar: tarfile.TarFile, key: str) -> PairSample:
    def member(ext: str) -> bytes:
        f = tar.extractfile(f"{key}.{ext}")
        if f is None:
            raise KeyError(f"{key}.{ext} missing from {tar.name}")
        return f.read()

    j1, j2 = member("0.jpg"), member("1.jpg")
    meta = json.loads(member("json"))
    return PairSample(key, decode_jpeg(j1), decode_jpeg(j2), meta, j1, j2)
