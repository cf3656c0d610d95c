"""Integrity: what the writer records (member counts, sizes, sha256 of shards and pairs) and
what the readers do with a damaged shard: a damaged tar header mid-shard, a shard cut at a
member boundary, flipped JPEG bytes. Training never reads them silently (the lost pairs are
left out, counted, and a warning names the shard; strict data refuses), and ``verify``
names them."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import re
import shutil
from pathlib import Path

import pytest
from shard_tools import damage, read_members

from mimic_fast.cli import main
from mimic_fast.data import DataConfig, DataError, PairDataset, PairTransform, StreamingPairs
from mimic_fast.data.index import ShardIndex, open_index

SMALL = PairTransform(img_size=32, num_patches=4, num_masked=3)
SHARD = "pairs-000000.tar"
DAMAGE_AT = 3  # the damaged sample (header, boundary: it and every later one are lost)


@pytest.fixture
def dataset(mined_tum, tmp_path):
    return shutil.copytree(mined_tum, tmp_path / "ds")


def _pairs(ds: Path) -> int:
    return sum(1 for line in (ds / "index.jsonl").read_text().splitlines() if line.strip())


def _lost(how: str, n: int) -> int:
    return 1 if how == "flip" else n - DAMAGE_AT


def _read_all(dataset: PairDataset) -> tuple[int, int, set]:
    """(pairs delivered, replacements counted, pairs delivered by index) over one pass."""
    delivered, skipped, seen = 0, 0, set()
    for i in range(len(dataset)):
        sample = dataset[i]
        delivered += 1
        skipped += sample["skipped"]
        seen.add(sample["index"])
    return delivered, skipped, seen


def test_mining_records_counts_sizes_and_hashes(mined_tum):
    rows = [json.loads(line) for line in (mined_tum / "index.jsonl").read_text().splitlines()]
    shard = mined_tum / SHARD
    members = read_members(shard)
    assert {r["shard"] for r in rows} == {SHARD}
    assert {r["shard_members"] for r in rows} == {len(members)} == {3 * len(rows)}
    assert {r["shard_bytes"] for r in rows} == {shard.stat().st_size}
    assert {r["shard_sha256"] for r in rows} == {hashlib.sha256(shard.read_bytes()).hexdigest()}
    by_key = {}
    for name, data in members:
        by_key.setdefault(name.split(".", 1)[0], []).append(data)
    for r in rows:  # a pair's hash: its members' bytes in tar order
        assert r["sha256"] == hashlib.sha256(b"".join(by_key[r["key"]])).hexdigest()
    manifest = json.loads(next((mined_tum / "_done").glob("*.json")).read_text())
    assert manifest["shard_sha256"] == rows[0]["shard_sha256"]
    assert manifest["shard_members"] == len(members)
    assert [p["sha256"] for p in manifest["pairs"]] == [r["sha256"] for r in rows]


@pytest.mark.parametrize("how", ["header", "boundary", "flip"])
def test_training_index_counts_and_names_a_damaged_shard(dataset, how, caplog):
    n = _pairs(dataset)
    damage(dataset / SHARD, how, DAMAGE_AT)
    with caplog.at_level(logging.WARNING):
        index = ShardIndex.build(dataset)
        delivered, skipped, seen = _read_all(PairDataset(index, SMALL, 0))
    damaged_lines = [r.getMessage() for r in caplog.records if SHARD in r.getMessage()]
    assert damaged_lines, caplog.text  # a warning names the shard
    if how == "flip":  # found when the pair is read: replaced, counted, named
        assert len(index) == n and skipped == 1 and len(seen) == n - 1
        assert any("sha256" in m for m in damaged_lines)
    else:  # found while indexing: the lost pairs are left out and counted
        assert len(index) == DAMAGE_AT and skipped == 0
        assert index.lost_pairs == n - DAMAGE_AT
        assert any(f"{n - DAMAGE_AT} of its {n} pairs lost" in m for m in damaged_lines)


@pytest.mark.parametrize("how", ["header", "boundary", "flip"])
def test_strict_data_refuses_a_damaged_shard(dataset, how, tmp_path):
    damage(dataset / SHARD, how, DAMAGE_AT)
    with pytest.raises(DataError, match=re.escape(SHARD)):
        index = open_index(dataset, strict=True)
        _read_all(PairDataset(index, SMALL, 0, strict=True))
    # the cached index of a non-strict open keeps the damage: a strict run still refuses
    cache = tmp_path / "index.npz"
    open_index(dataset, cache)
    with pytest.raises(DataError, match=re.escape(SHARD)):
        index = open_index(dataset, cache, strict=True)
        _read_all(PairDataset(index, SMALL, 0, strict=True))


@pytest.mark.parametrize("how", ["header", "boundary", "flip"])
def test_streaming_reader_counts_and_names_a_damaged_shard(dataset, how, caplog):
    from mimic_fast.dataset.paths import stream_records

    n = _pairs(dataset)
    damage(dataset / SHARD, how, DAMAGE_AT)
    stream = StreamingPairs([str(dataset / SHARD)], SMALL, 0, 0, 1, batch_size=2,
                            shuffle_buffer=2, records=stream_records(str(dataset)))
    with caplog.at_level(logging.WARNING):
        out = list(itertools.islice(iter(stream), 3 * n))
    good = n - _lost(how, n)
    assert sum(s["skipped"] for s in out) >= 2 * _lost(how, n)  # per epoch, two epochs at least
    assert SHARD in caplog.text
    strict = StreamingPairs([str(dataset / SHARD)], SMALL, 0, 0, 1, batch_size=2,
                            records=stream_records(str(dataset)), strict=True)
    with pytest.raises(DataError, match=re.escape(SHARD)):
        list(itertools.islice(iter(strict), 2 * good + 2))


@pytest.mark.parametrize("how", ["header", "boundary", "flip"])
def test_verify_names_what_is_damaged(dataset, how, capsys):
    damage(dataset / SHARD, how, DAMAGE_AT)
    assert main(["verify", str(dataset)]) == 1
    out = capsys.readouterr().out
    damaged = [line for line in out.splitlines() if line.startswith("DAMAGED")]
    assert damaged and all(SHARD in line or "problem" in line for line in damaged)
    assert "sha256" in out


def test_verify_passes_a_clean_dataset(mined_tum, capsys):
    assert main(["verify", str(mined_tum)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("OK:") and "sha256" in lines[0]


def test_a_dataset_without_hashes_stays_readable_and_checked(dataset, capsys, caplog):
    """An index written before integrity records: read as before, verify says so, and the
    tar scanner still finds a cut shard (the index's rows say how many pairs it cost)."""
    rows = [json.loads(line) for line in (dataset / "index.jsonl").read_text().splitlines()]
    legacy = [{k: v for k, v in r.items() if k != "sha256" and not k.startswith("shard_")}
              | {"shard": r["shard"]} for r in rows]
    (dataset / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in legacy))
    assert main(["verify", str(dataset)]) == 0
    assert "no hashes recorded" in capsys.readouterr().out
    assert len(ShardIndex.build(dataset)) == len(rows)
    damage(dataset / SHARD, "boundary", DAMAGE_AT)
    with caplog.at_level(logging.WARNING):
        index = ShardIndex.build(dataset)
    assert len(index) == DAMAGE_AT
    assert SHARD in caplog.text and f"{len(rows) - DAMAGE_AT} of its {len(rows)} pairs lost" \
        in caplog.text
    assert main(["verify", str(dataset)]) == 1
    assert SHARD in capsys.readouterr().out


def test_only_the_dataset_package_parses_tar_files():
    package = Path(__import__("mimic_fast").__file__).parent
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py")
                   if "tarfile" in p.read_text() and p.parent.name != "dataset")
    assert users == []
    assert (package / "dataset" / "reader.py").is_file()


def test_train_cli_strict_data_flag_reaches_the_data_config():
    from mimic_fast.cli import build_parser
    from mimic_fast.train.commands import config_from_args

    args = ["train", "--data", "d", "--out", "o", "--max-steps", "1", "--batch-size", "2"]
    assert config_from_args(build_parser().parse_args(args)).data.strict is False
    cfg = config_from_args(build_parser().parse_args(args + ["--strict-data"]))
    assert cfg.data == DataConfig(path="d", num_workers=cfg.data.num_workers, strict=True)


def test_a_training_run_reports_the_pairs_a_damaged_shard_lost(dataset, tmp_path, caplog):
    n = _pairs(dataset)
    damage(dataset / SHARD, "header", DAMAGE_AT)
    with caplog.at_level(logging.WARNING):
        assert main(["train", "--data", str(dataset), "--model", "croco_test", "--out",
                     str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "2",
                     "--device", "cpu", "--num-workers", "0", "--no-progress"]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["lost_pairs"] == n - DAMAGE_AT and summary["dataset_pairs"] == DAMAGE_AT
    assert f"{n - DAMAGE_AT} pairs of damaged shards were left out" in caplog.text


@pytest.mark.parametrize("how", ["header", "flip"])
def test_pack_of_a_damaged_dataset_is_a_one_line_error(dataset, tmp_path, capsys, how):
    damage(dataset / SHARD, how, DAMAGE_AT)
    assert main(["pack", str(dataset), str(tmp_path / "packed")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and SHARD in err[0], err


@pytest.mark.parametrize("how", ["extra", "repeated"])
def test_samples_the_index_does_not_record_are_never_trained_on(dataset, caplog, how):
    """An appended sample (a new key, or a second copy of a recorded key with other bytes)
    carries no recorded hash: neither reader yields it, and the shard is flagged."""
    from mimic_fast.dataset.reader import iter_tar_pairs, read_records
    from shard_tools import write_tar

    n = _pairs(dataset)
    members = read_members(dataset / SHARD)
    key = members[0][0].split(".", 1)[0]
    new = key if how == "repeated" else key[:-6] + "999999"
    members += [(f"{new}.0.jpg", members[1][1]), (f"{new}.1.jpg", members[0][1]),
                (f"{new}.json", members[2][1])]
    write_tar(dataset / SHARD, members)
    with caplog.at_level(logging.WARNING):
        index = ShardIndex.build(dataset)
    assert len(index) == n and SHARD in caplog.text
    assert index.keys.count(key) == 1 and (how == "repeated" or new not in index.keys)
    record = read_records(dataset)[SHARD]
    got = []
    with pytest.raises(DataError, match="tar members"):  # the member count flags the shard
        for k, views in iter_tar_pairs(str(dataset / SHARD), record):
            got.append((k, views))
    assert [k for k, _ in got].count(key) == 1 and len(got) == n
    assert all(v is not None for _, v in got) and (how == "repeated" or new not in dict(got))


def test_a_shard_cut_only_before_its_end_marker_loses_nothing(dataset, caplog):
    """Every recorded pair is read: the streaming reader warns, and counts no pair as lost
    (it used to report one)."""
    from shard_tools import member_offsets

    from mimic_fast.dataset.paths import stream_records

    n = _pairs(dataset)
    _, _, data, size = member_offsets(dataset / SHARD)[-1]
    with open(dataset / SHARD, "r+b") as f:
        f.truncate(data + (size + 511) // 512 * 512)  # the members stay, the marker goes
    stream = StreamingPairs([str(dataset / SHARD)], SMALL, 0, 0, 1, batch_size=2,
                            shuffle_buffer=2, records=stream_records(str(dataset)))
    with caplog.at_level(logging.WARNING):
        out = list(itertools.islice(iter(stream), n))
    assert len(out) == n and sum(s["skipped"] for s in out) == 0
    assert "end-of-archive" in caplog.text and f"all {n} of its recorded pairs" in caplog.text
