"""The dataset index over mined shards and over the published CSV layout; bad datasets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from shard_tools import export_csv_layout, read_members, samples, write_tar

from mimic_fast.data import CsvIndex, DataError, ShardIndex, open_index, split
from mimic_fast.data.transforms import decode_rgb


def test_index_matches_the_mined_dataset(mined_tum):
    index = ShardIndex.build(mined_tum)
    rows = [json.loads(line) for line in (mined_tum / "index.jsonl").read_text().splitlines()]
    assert index.keys == [r["key"] for r in rows]
    members = dict(m for s in samples(mined_tum) for m in s)
    for i in (0, len(index) - 1):
        a, b = index.read(i)
        assert a == members[f"{index.keys[i]}.0.jpg"] and b == members[f"{index.keys[i]}.1.jpg"]
        assert decode_rgb(a).shape == (224, 224, 3)


def test_index_cache_roundtrip_and_invalidation(mined_tum, tmp_path):
    data = shutil.copytree(mined_tum, tmp_path / "d")
    cache = tmp_path / "index.npz"
    first = ShardIndex.build(data, cache)
    assert cache.is_file()
    again = ShardIndex.build(data, cache)
    assert again.keys == first.keys and np.array_equal(again.offsets, first.offsets)
    # a changed shard is rescanned, not served from the stale cache
    shard = next(data.glob("*.tar"))
    write_tar(shard, read_members(shard)[:6])  # the first two samples only
    assert len(ShardIndex.build(data, cache)) == 2


def test_csv_layout_reads_the_same_pairs(mined_tum, tmp_path):
    csv_path = export_csv_layout(mined_tum, tmp_path / "published")
    shards, csv_index = ShardIndex.build(mined_tum), open_index(csv_path)
    assert isinstance(csv_index, CsvIndex) and len(csv_index) == len(shards)
    assert csv_index.read(3) == shards.read(3)
    assert isinstance(open_index(tmp_path / "published"), CsvIndex)  # a folder with one CSV


def test_holdout_split_is_disjoint_stable_and_complete(mined_tum):
    index = ShardIndex.build(mined_tum)
    train, held = split(index, 0.3, "train"), split(index, 0.3, "holdout")
    assert set(train.keys).isdisjoint(held.keys)
    assert sorted(train.keys + held.keys) == sorted(index.keys)
    assert split(index, 0.3, "holdout").keys == held.keys
    assert split(index, 0.3, "all") is index


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist"),
    ("empty", "no \\*.tar shards"),
    ("no_pairs", "no pairs"),
    ("not_tar", "not a readable tar"),
    ("truncated", "truncated"),
])
def test_bad_datasets_raise_clear_errors(mined_tum, tmp_path, case, message):
    folder = tmp_path / "bad"
    if case != "missing":
        folder.mkdir()
    shard_bytes = next(mined_tum.glob("*.tar")).read_bytes()
    if case == "no_pairs":
        write_tar(folder / "pairs-000000.tar", [("k.json", b"{}"), ("k.0.jpg", b"x")])
    elif case == "not_tar":
        (folder / "pairs-000000.tar").write_bytes(b"this is not a tar file" * 100)
    elif case == "truncated":
        (folder / "pairs-000000.tar").write_bytes(shard_bytes[: len(shard_bytes) // 2])
    with pytest.raises(DataError, match=message):  # strict: a damaged shard is refused
        ShardIndex.build(folder, strict=True)       # (without: see test_dataset_integrity)


def test_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="path1,path2"):
        CsvIndex.build(bad)
    empty = tmp_path / "empty.csv"
    empty.write_text("path1,path2\n")
    with pytest.raises(DataError, match="no pairs"):
        CsvIndex.build(empty)


def test_jpeg_trailers_decode_and_cut_jpegs_do_not(mined_tum):
    from mimic_fast.data.transforms import DecodeError

    a, _ = ShardIndex.build(mined_tum).read(0)
    # bytes after the end-of-image marker (phone photos' trailers) are not corruption
    assert decode_rgb(a + b"MOTION-PHOTO-TRAILER" * 10).shape == (224, 224, 3)
    with pytest.raises(DecodeError, match="truncated JPEG"):
        decode_rgb(a[: len(a) // 2])


def test_a_failed_index_cache_write_leaves_nothing_behind(mined_tum, tmp_path, monkeypatch):
    """The cache is written by the one atomic writer: an error (here at the rename) keeps the
    old cache and leaves no temporary (a killed writer's is named so the sweep finds it)."""
    import os

    cache = tmp_path / "data-index.npz"
    index = ShardIndex.build(mined_tum)
    index.save(cache)
    before = cache.read_bytes()

    def fail(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError):
        index.save(cache, stamp="other")
    monkeypatch.undo()
    assert cache.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data-index.npz"]
