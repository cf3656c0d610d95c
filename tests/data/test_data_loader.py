"""Order, rank/worker splitting, resume positions, skips and per-pair randomness of the loaders."""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest
from shard_tools import read_members, split_into_shards, write_tar

from mimic_fast.data import (DataConfig, DataError, EpochSampler, PairDataset, PairTransform,
                             ShardIndex, StreamingPairs, choose_decoder, train_batches)
from mimic_fast.data.dali import DaliUnavailable

SMALL = PairTransform(img_size=32, num_patches=4, num_masked=3)


def take(it, n):
    return list(itertools.islice(it, n))


def test_epoch_sampler_splits_ranks_like_one_big_batch():
    n, b, seed = 23, 3, 5
    one = take(iter(EpochSampler(n, 2 * b, 0, 1, seed)), 6 * b * 2)
    r0 = take(iter(EpochSampler(n, b, 0, 2, seed)), 6 * b)
    r1 = take(iter(EpochSampler(n, b, 1, 2, seed)), 6 * b)
    for k in range(6):  # global micro-batch k: the same pairs, whatever the split
        big = one[k * 2 * b:(k + 1) * 2 * b]
        assert sorted(big) == sorted(r0[k * b:(k + 1) * b] + r1[k * b:(k + 1) * b])
    epoch0 = [i for e, i in one if e == 0]
    assert len(epoch0) == (n // (2 * b)) * 2 * b and len(set(epoch0)) == len(epoch0)
    assert {e for e, _ in one} == {0, 1}  # 36 draws, 18 per epoch


def test_epoch_sampler_resumes_exactly():
    full = take(iter(EpochSampler(10, 2, 1, 2, seed=3)), 40)
    assert take(iter(EpochSampler(10, 2, 1, 2, seed=3, start=14)), 26) == full[14:]


def test_epoch_sampler_refuses_a_dataset_smaller_than_a_global_batch():
    with pytest.raises(DataError, match="fewer than one global micro-batch"):
        EpochSampler(5, 3, 0, 2)


def test_pair_randomness_is_keyed_per_pair(mined_tum):
    ds = PairDataset(ShardIndex.build(mined_tum), SMALL, seed=1)
    a, b = ds[(0, 4)], ds[(0, 4)]
    assert np.array_equal(a["target"], b["target"]) and np.array_equal(a["mask"], b["mask"])
    assert a["target"].shape == (3, 32, 32) and a["reference"].shape == (3, 32, 32)
    assert int(a["mask"].sum()) == 3
    views = {ds[(e, 4)]["target_view"] for e in range(20)}
    assert views == {0, 1}  # which view is masked is drawn per pair and epoch


def test_augmentation_changes_views_independently(mined_tum):
    index = ShardIndex.build(mined_tum)
    plain = PairDataset(index, PairTransform(64, augment=False), seed=0)[(0, 2)]
    aug = PairDataset(index, PairTransform(64, augment=True), seed=0)[(0, 2)]
    assert aug["target"].shape == (3, 64, 64) and aug["reference"].shape == (3, 64, 64)
    assert aug["target_view"] == plain["target_view"]
    assert not np.array_equal(aug["target"], plain["target"])
    assert not np.array_equal(aug["reference"], plain["reference"])


def test_mae_transform_decodes_one_view(mined_tum):
    s = PairDataset(ShardIndex.build(mined_tum), PairTransform(32, 4, 2, two_views=False), 0)[(0, 0)]
    assert "reference" not in s and s["target"].shape == (3, 32, 32)


def _corrupt(mined_tum, tmp_path, which):
    data = shutil.copytree(mined_tum, tmp_path / "corrupt")
    shard = next(data.glob("*.tar"))
    members = read_members(shard)
    for k in which:  # member 3k+1 = view 1 of sample k (order .0.jpg, .1.jpg, .json)
        name, payload = members[3 * k + 1]
        members[3 * k + 1] = (name, payload[:200] + b"garbage" * 50)
    write_tar(shard, members)
    return data


def test_a_corrupt_jpeg_is_replaced_and_counted(mined_tum, tmp_path):
    data = _corrupt(mined_tum, tmp_path, [2])
    ds = PairDataset(ShardIndex.build(data), SMALL, seed=0)
    bad = ds[(0, 2)]
    assert bad["skipped"] == 1 and bad["index"] == 3
    assert ds[(0, 1)]["skipped"] == 0


def test_an_all_corrupt_dataset_raises_instead_of_hanging(mined_tum, tmp_path):
    n = len(ShardIndex.build(mined_tum))
    ds = PairDataset(ShardIndex.build(_corrupt(mined_tum, tmp_path, range(n))), SMALL, seed=0)
    with pytest.raises(DataError, match="consecutive unreadable pairs"):
        ds[(0, 0)]


@pytest.mark.parametrize("shards", [1, 5])
def test_streaming_slots_cover_each_pair_once_per_epoch(mined_tum, tmp_path, shards):
    data = split_into_shards(mined_tum, tmp_path / "split", shards)
    keys = ShardIndex.build(data).keys
    ds = StreamingPairs([str(p) for p in sorted(data.glob("*.tar"))], SMALL, seed=0, rank=0,
                        world=2, batch_size=1)
    for epoch in (0, 1):  # 2 ranks x 2 workers = 4 slots: by shard (5 shards) or by pair (1)
        parts = [[k for k, _ in ds.slot_pairs(epoch, slot, 4)] for slot in range(4)]
        assert sorted(k for p in parts for k in p) == sorted(keys)
        assert all(parts)


def test_streaming_resume_skips_exactly_what_was_consumed(mined_tum):
    urls = [str(p) for p in sorted(mined_tum.glob("*.tar"))]
    full = take(iter(StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, shuffle_buffer=5)), 30)
    resumed = take(iter(StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, start_batches=4,
                                       shuffle_buffer=5)), 22)
    for a, b in zip(full[8:], resumed):
        assert np.array_equal(a["target"], b["target"]) and np.array_equal(a["mask"], b["mask"])


def test_train_batches_from_index_and_stream(mined_tum):
    kw = dict(img_size=32, num_patches=4, num_masked=3, two_views=True, batch_size=3, rank=0,
              world=1, seed=0, device="cpu")
    src = train_batches(DataConfig(path=str(mined_tum), num_workers=0), **kw)
    first = take(src, 5)
    assert src.reader == "index" and src.pairs >= 8
    assert first[0]["target"].shape == (3, 3, 32, 32) and first[0]["mask"].shape == (3, 4)
    at_3 = dict(src.state_dict(), micro_batches=3)
    resumed = train_batches(DataConfig(path=str(mined_tum), num_workers=2), **kw)
    resumed.load_state_dict(at_3)
    later = take(resumed, 2)
    for a, b in zip(first[3:], later):  # resume position, and workers change nothing
        assert np.array_equal(a["target"], b["target"]) and np.array_equal(a["index"], b["index"])
    assert resumed.state_dict()["micro_batches"] == 5
    with pytest.raises(RuntimeError, match="before the first batch"):
        resumed.load_state_dict(at_3)
    stream = train_batches(DataConfig(path=str(mined_tum), num_workers=0, streaming=True), **kw)
    assert stream.reader == "stream" and next(stream)["target"].shape == (3, 3, 32, 32)


def test_streaming_batch_source_position_round_trips(mined_tum):
    """The streaming reader's position (batches and each worker role's stream position) is
    the source's own state: a fresh source loaded with it continues with the same batches."""
    kw = dict(img_size=32, num_patches=4, num_masked=3, two_views=True, batch_size=2, rank=0,
              world=1, seed=0, device="cpu")
    cfg = DataConfig(path=str(mined_tum), num_workers=2, streaming=True, shuffle_buffer=4)
    src = train_batches(cfg, **kw)
    take(src, 3)
    state = src.state_dict()
    assert state["micro_batches"] == 3 and state["reader"] == "stream"
    assert all(p is not None for p in state["stream_pos"])
    expected = take(src, 4)
    resumed = train_batches(cfg, **kw)
    resumed.load_state_dict(state)
    for a, b in zip(expected, take(resumed, 4)):
        assert np.array_equal(a["target"], b["target"]) and np.array_equal(a["mask"], b["mask"])


def test_decoder_choice_is_explicit():
    cfg = DataConfig(path="x", decode="dali")
    with pytest.raises(DaliUnavailable, match="cannot run"):
        choose_decoder(cfg, "cpu")
    decoder, why = choose_decoder(DataConfig(path="x"), "cpu")
    assert decoder == "cpu" and "DALI not used" in why


def test_data_config_validates():
    with pytest.raises(ValueError, match="decode must be one of"):
        DataConfig(decode="gpu")
    with pytest.raises(ValueError, match="holdout"):
        DataConfig(holdout=1.5)


def test_streaming_resume_with_two_workers(mined_tum):
    from mimic_fast.data.loader import make_loader

    urls = [str(p) for p in sorted(mined_tum.glob("*.tar"))]
    cfg = DataConfig(num_workers=2, prefetch_factor=1)

    def batches(start, n):
        ds = StreamingPairs(urls, SMALL, 0, 0, 1, batch_size=2, start_batches=start, shuffle_buffer=4)
        return take(iter(make_loader(ds, cfg, 2)), n)

    full, resumed = batches(0, 7), batches(3, 4)
    for a, b in zip(full[3:], resumed):  # workers alternate batches; each skips its own share
        assert np.array_equal(a["target"], b["target"]) and np.array_equal(a["mask"], b["mask"])


def test_streaming_from_an_fsspec_url(mined_tum):
    import fsspec

    fs = fsspec.filesystem("memory")
    for shard in sorted(mined_tum.glob("*.tar")):
        fs.pipe(f"/bucket/ds/{shard.name}", shard.read_bytes())
    from mimic_fast.dataset.paths import list_stream_urls

    urls = list_stream_urls("memory://bucket/ds")
    assert urls and all(u.startswith("memory://") and u.endswith(".tar") for u in urls)
    n = len(ShardIndex.build(mined_tum))
    ds = StreamingPairs(urls, SMALL, seed=0, rank=0, world=1, batch_size=1)
    pairs = {frozenset((bytes(s["target"].numpy()), bytes(s["reference"].numpy()))) for s in take(iter(ds), n)}
    assert len(pairs) == n  # one epoch: every pair once


def test_training_batches_from_the_published_csv_layout(mined_tum, tmp_path):
    from shard_tools import export_csv_layout

    csv_path = export_csv_layout(mined_tum, tmp_path / "published")
    src = train_batches(DataConfig(path=str(csv_path), num_workers=0), img_size=32, num_patches=4,
                        num_masked=3, two_views=True, batch_size=4, rank=0, world=1, seed=0,
                        device="cpu")
    assert src.pairs == len(ShardIndex.build(mined_tum))
    assert next(src)["reference"].shape == (4, 3, 32, 32)


def test_loader_workers_default_to_at_most_the_cores():
    """4 loader processes on a 2-core machine only queued (and torch warned in the first
    hour's train): the default is min(4, cores)."""
    import os

    assert DataConfig().num_workers == min(4, os.cpu_count() or 1)
