"""Readers under stress: many shards, vanished or broken shards, stale shards beside a mined
index, resume after unreadable samples, the automatic decoder choice, dataset fingerprints."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from shard_tools import read_members, split_into_shards, write_tar

from mimic_fast.data import DataConfig, DataError, PairTransform, ShardIndex, StreamingPairs
from mimic_fast.data import loader as L
from mimic_fast.data.pipeline import choose_decoder
from mimic_fast.dataset.paths import list_shards

SMALL = PairTransform(img_size=32, num_patches=4, num_masked=3)


def take(it, n):
    return list(itertools.islice(it, n))


def _tiny_shards(folder, n):
    folder.mkdir()
    for k in range(n):
        write_tar(folder / f"pairs-{k:06d}.tar", [(f"s{k}.0.jpg", b"a" * 7), (f"s{k}.1.jpg", b"b" * 5)])
    return folder


def test_reading_many_shards_keeps_few_descriptors_open(tmp_path):
    data = _tiny_shards(tmp_path / "many", 150)
    script = textwrap.dedent(f"""
        import os, resource
        from mimic_fast.data.index import ShardIndex
        index = ShardIndex.build({str(data)!r})
        ShardIndex.MAX_OPEN = 8
        used = len(os.listdir("/proc/self/fd"))
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 24, hard))
        for _ in range(2):
            for i in range(len(index)):
                assert index.read(i) == (b"a" * 7, b"b" * 5)
        assert len(index._fds) == 8
        index.close()
        print("ok", len(index))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["ok", "150"]


def test_an_unreadable_shard_is_a_data_error(tmp_path):
    data = _tiny_shards(tmp_path / "few", 3)
    index = ShardIndex.build(data)
    (data / "pairs-000001.tar").unlink()
    assert index.read(0) == (b"a" * 7, b"b" * 5)
    with pytest.raises(DataError, match="pairs-000001.tar.*cannot read"):
        index.read(1)


def _truncate(shard, keep_samples):
    """Keep ``keep_samples`` whole samples and half of the next member (a crash mid-write)."""
    import tarfile

    write_tar(shard, read_members(shard)[: 3 * keep_samples + 1])
    with tarfile.open(shard) as tar:
        last = tar.getmembers()[-1]
    with open(shard, "r+b") as f:
        f.truncate(last.offset_data + last.size // 2)


def test_streaming_goes_on_past_a_truncated_shard(mined_tum, tmp_path, caplog):
    data = split_into_shards(mined_tum, tmp_path / "split", 3)
    urls = [str(p) for p in sorted(data.glob("*.tar"))]
    good = len(ShardIndex.build(data))
    _truncate(data / "pairs-000001.tar", keep_samples=1)
    out = take(iter(StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, shuffle_buffer=2)), 3 * good)
    assert len(out) == 3 * good
    assert sum(s["skipped"] for s in out) >= 2  # once per epoch at least
    assert "skipping the rest of shard" in caplog.text


def test_streaming_goes_on_past_a_network_error(mined_tum, tmp_path, monkeypatch):
    data = split_into_shards(mined_tum, tmp_path / "split", 3)
    urls = [str(p) for p in sorted(data.glob("*.tar"))]
    real = L.iter_tar_pairs

    def flaky(url, *args):
        for n, item in enumerate(real(url, *args)):
            if url.endswith("000002.tar") and n == 1:
                raise OSError("connection reset by peer")
            yield item

    monkeypatch.setattr(L, "iter_tar_pairs", flaky)
    out = take(iter(StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, shuffle_buffer=2)), 40)
    assert len(out) == 40 and sum(s["skipped"] for s in out) >= 1


def test_streaming_resume_after_unreadable_samples_is_exact(mined_tum, tmp_path):
    data = shutil.copytree(mined_tum, tmp_path / "data")
    shard = next(data.glob("*.tar"))
    members = read_members(shard)
    for k in (1, 4):  # two samples with a truncated JPEG view
        name, payload = members[3 * k]
        assert name.endswith(".0.jpg")
        members[3 * k] = (name, payload[:300])
    write_tar(shard, members)
    urls = [str(shard)]
    full = take(iter(StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, shuffle_buffer=3)), 24)
    assert sum(s["skipped"] for s in full[:10]) >= 1
    resume_at = 5  # micro-batches of 2 consumed
    positions = [full[2 * resume_at - 1]["stream_pos"]]
    resumed = take(iter(StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, start_batches=resume_at,
                                       shuffle_buffer=3, start_positions=positions)), 14)
    for a, b in zip(full[2 * resume_at:], resumed, strict=True):
        assert np.array_equal(a["target"], b["target"]) and np.array_equal(a["mask"], b["mask"])


def test_only_the_shards_of_the_mined_index_are_read(mined_tum, tmp_path):
    from mimic_fast.data.index import dataset_fingerprint

    data = shutil.copytree(mined_tum, tmp_path / "data")
    listed = list_shards(data)
    stale = data / "pairs-999999.tar"
    shutil.copyfile(listed[0], stale)  # a shard the index does not list (stale leftover)
    assert list_shards(data) == listed
    assert len(ShardIndex.build(data)) == len(ShardIndex.build(mined_tum))
    assert dataset_fingerprint(data) == dataset_fingerprint(mined_tum)
    rows = [json.loads(line) for line in (data / "index.jsonl").read_text().splitlines()]
    assert {r["shard"] for r in rows} == {p.name for p in listed}
    listed[0].unlink()
    with pytest.raises(DataError, match="index.jsonl lists"):
        list_shards(data)


def test_fingerprint_follows_content_not_location(mined_tum, tmp_path):
    from mimic_fast.data.index import dataset_fingerprint

    moved = shutil.copytree(mined_tum, tmp_path / "moved")
    assert dataset_fingerprint(moved) == dataset_fingerprint(mined_tum)
    other = split_into_shards(mined_tum, tmp_path / "split", 2)
    assert dataset_fingerprint(other) != dataset_fingerprint(mined_tum)


def test_auto_decoder_uses_dali_for_indexed_data_and_the_cpu_for_streams(mined_tum,
                                                                          monkeypatch):
    from mimic_fast.data import dali

    monkeypatch.setattr(dali, "dali_available", lambda: (True, ""))
    assert choose_decoder(DataConfig(path=str(mined_tum)), "cuda")[0] == "dali"
    # the DALI reader reads the training index, held-out split included
    assert choose_decoder(DataConfig(path=str(mined_tum), holdout=0.2), "cuda")[0] == "dali"
    decoder, why = choose_decoder(DataConfig(path=str(mined_tum), streaming=True), "cuda")
    assert decoder == "cpu" and "streamed" in why
