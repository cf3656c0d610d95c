"""pack: the same pairs, byte for byte and in index order, in shards of N pairs; readable
by every reader; mine refuses to add to a packed folder."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from mimic_fast.cli import main
from mimic_fast.data.index import ShardIndex
from mimic_fast.dataset.pack import PackError, pack
from mimic_fast.dataset.paths import list_shards
from mimic_fast.dataset.reader import iter_samples, read_index
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import DatasetMismatch, mine

from shard_tools import read_members  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture
def inputs(scenes_and_tum):
    return scenes_and_tum


@pytest.fixture
def mined(mined_scenes_and_tum):
    out = mined_scenes_and_tum
    summary = json.loads((out / "summary.json").read_text())
    assert summary["accepted"] >= 12 and len(summary["shards"]) >= 3, summary
    return out


def _members_in_order(dataset):
    return [m for shard in list_shards(dataset) for m in read_members(shard)]


def test_pack_keeps_every_pair_and_its_bytes_in_index_order(mined, tmp_path):
    out = tmp_path / "packed"
    summary = pack(mined, out, pairs_per_shard=5)
    rows, packed_rows = read_index(mined), read_index(out)
    n = len(rows)
    assert [r["shard"] for r in packed_rows] == [f"pairs-{i // 5:06d}.tar" for i in range(n)]
    def pair_fields(row):  # the pair's own fields, its sha256 included (same bytes)
        return {k: v for k, v in row.items() if not k.startswith("shard")}

    assert [pair_fields(r) for r in packed_rows] == [pair_fields(r) for r in rows]
    assert all(r["sha256"] for r in packed_rows)
    for r in packed_rows:  # the new shards' own integrity records
        shard = out / r["shard"]
        assert r["shard_bytes"] == shard.stat().st_size
        assert r["shard_sha256"] == hashlib.sha256(shard.read_bytes()).hexdigest()
        assert r["shard_members"] == len(read_members(shard))
    assert summary["shards"] == sorted(p.name for p in out.glob("pairs-*.tar"))
    assert len(summary["shards"]) == math.ceil(n / 5)
    assert _members_in_order(out) == _members_in_order(mined)  # names and bytes
    for a, b in zip(iter_samples(mined), iter_samples(out), strict=True):
        assert (a.key, a.jpeg1, a.jpeg2, a.meta) == (b.key, b.jpeg1, b.jpeg2, b.meta)
    index = ShardIndex.build(out)  # the training reader
    assert list(index.keys) == [r["key"] for r in rows]
    assert index.read(n - 1) == (b.jpeg1, b.jpeg2)
    config = json.loads((out / "config.json").read_text())
    assert config["packed"] == {"from": str(mined.resolve()), "pairs_per_shard": 5}
    assert config["sources"] == json.loads((mined / "config.json").read_text())["sources"]


def test_pack_is_deterministic_and_readable_by_webdataset(mined, tmp_path):
    wds = pytest.importorskip("webdataset")
    a, b = tmp_path / "a", tmp_path / "b"
    pack(mined, a, pairs_per_shard=4)
    pack(mined, b, pairs_per_shard=4)
    shards = sorted(p.name for p in a.glob("*.tar"))
    assert shards and all((a / s).read_bytes() == (b / s).read_bytes() for s in shards)
    urls = [str(a / s) for s in shards]
    got = [s["__key__"] for s in wds.WebDataset(urls, shardshuffle=False)]
    assert got == [r["key"] for r in read_index(mined)]


def test_packed_folder_is_refused_by_mine_and_pack_wants_a_new_folder(mined, inputs, tmp_path):
    out = tmp_path / "packed"
    pack(mined, out, pairs_per_shard=1000)
    assert len(list(out.glob("pairs-*.tar"))) == 1
    with pytest.raises(DatasetMismatch, match="packed copy"):
        mine(inputs, out, MineConfig(), RunOptions(progress=False))
    with pytest.raises(PackError, match="already holds a dataset"):
        pack(mined, out)
    with pytest.raises(PackError, match="must differ"):
        pack(mined, mined)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(PackError, match="not empty"):
        pack(mined, other)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="pairs_per_shard"):
        pack(mined, tmp_path / "x", pairs_per_shard=0)


def test_an_unfinished_pack_is_cleared_and_redone(mined, tmp_path):
    out = tmp_path / "packed"
    pack(mined, out, pairs_per_shard=3)
    (out / "config.json").unlink()  # as if killed before the end
    (out / ".pairs-000009.tar.tmp-1-abc").write_bytes(b"partial")
    (out / "pairs-000099.tar").write_bytes(b"stale")
    pack(mined, out, pairs_per_shard=6)
    assert sorted(p.name for p in out.iterdir() if p.name.endswith(".tar")) == \
        json.loads((out / "summary.json").read_text())["shards"]
    assert not list(out.glob(".*tmp-*"))


def test_a_sample_missing_from_its_shard_is_a_clear_error(mined, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "summary.json"):
        (broken / name).write_bytes((mined / name).read_bytes())
    rows = read_index(mined)
    (broken / rows[0]["shard"]).write_bytes((mined / rows[0]["shard"]).read_bytes())
    fake = dict(rows[0], key="0000000000000000-000000-000001")
    (broken / "index.jsonl").write_text(json.dumps(fake) + "\n")
    with pytest.raises(PackError, match="has no sample '0000000000000000-000000-000001'"):
        pack(broken, tmp_path / "out")


def test_cli_pack_and_stats_on_the_packed_dataset(mined, tmp_path, capsys):
    out = tmp_path / "packed"
    assert main(["pack", str(mined), str(out), "--pairs-per-shard", "4"]) == 0
    n = len(read_index(mined))
    assert f"packed {n} pairs into {math.ceil(n / 4)} shards" in capsys.readouterr().out
    assert main(["stats", str(out), "--out", str(tmp_path / "hist.png")]) == 0
    assert (tmp_path / "hist.png").stat().st_size > 0
    assert main(["pack", str(tmp_path / "missing"), str(tmp_path / "o2")]) == 2
    assert "not a mined dataset" in capsys.readouterr().err
