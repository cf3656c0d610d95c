"""The DALI training reader (mimic_fast.data.dali) on DALI's CPU backend: the CPU reader's pairs,
order, views and skips, and the same refusals (pixel limit, recorded sha256). Skipped where
DALI is not installed."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed (the 'dali' extra)")

import cv2  # noqa: E402

from mimic_fast.data.dali import DaliPairs  # noqa: E402
from mimic_fast.data.index import open_index  # noqa: E402
from mimic_fast.data.loader import EpochSampler, PairDataset  # noqa: E402
from mimic_fast.data.transforms import PairTransform  # noqa: E402
from mimic_fast.dataset.errors import DamagedData, DataError  # noqa: E402

B = 4
FIELDS = ("target", "reference", "target_view", "index", "skipped")


def cpu_batches(index, n: int, img_size: int = 224, seed: int = 3, start: int = 0) -> list[dict]:
    """The CPU reader's first ``n`` micro-batches (PairDataset over EpochSampler, no workers)."""
    ds = PairDataset(index, PairTransform(img_size, two_views=True), seed)
    order = iter(EpochSampler(len(index), B, 0, 1, seed, start * B))
    out = []
    for _ in range(n):
        items = [ds[next(order)] for _ in range(B)]
        out.append({k: np.stack([np.asarray(it[k]) for it in items]) for k in FIELDS})
    return out


def dali_batches(index, n: int, img_size: int = 224, seed: int = 3, **kw) -> list[dict]:
    pairs = DaliPairs(index, B, img_size, True, seed=seed, device="cpu", num_threads=1, **kw)
    return [{k: v.numpy() for k, v in next(pairs).items()} for _ in range(n)]


def assert_same_batches(ours: list[dict], cpu: list[dict]) -> None:
    for k, (a, b) in enumerate(zip(ours, cpu)):
        for name in FIELDS:
            np.testing.assert_array_equal(a[name], b[name], err_msg=f"batch {k}, {name}")


def test_batches_are_the_cpu_readers(mined_tum):
    """Views at img_size: the same pairs, order, masked view and pixels, over an epoch end."""
    index = open_index(mined_tum)
    n = len(index) // B + 1
    assert_same_batches(dali_batches(index, n), cpu_batches(index, n))


def test_resized_views_are_within_resampling_differences(mined_tum):
    index = open_index(mined_tum)
    ours, cpu = dali_batches(index, 2, img_size=112), cpu_batches(index, 2, img_size=112)
    for a, b in zip(ours, cpu):
        np.testing.assert_array_equal(a["index"], b["index"])
        for name in ("target", "reference"):
            d = np.abs(a[name].astype(np.int16) - b[name].astype(np.int16))
            # DALI's antialiased linear (a triangle filter) vs OpenCV's INTER_AREA (a box),
            # 224 -> 112: measured mean 2.2-2.6, max 65 grey levels (at sharp edges)
            assert d.mean() < 3.5, (name, d.mean(), d.max())


def test_resume_is_exact(mined_tum):
    index = open_index(mined_tum)
    full = dali_batches(index, 5)
    assert_same_batches(dali_batches(index, 2, start_batches=3), full[3:])


def test_augmented_batches_keep_the_pairs_and_are_reproducible(mined_tum):
    index = open_index(mined_tum)
    first, again = (dali_batches(index, 2, img_size=96, augment=True) for _ in range(2))
    plain = cpu_batches(index, 2, img_size=96)
    for a, b, c in zip(first, again, plain):
        for name in FIELDS:
            np.testing.assert_array_equal(a[name], b[name])  # same seed: same batches
        for name in ("target_view", "index", "skipped"):
            np.testing.assert_array_equal(a[name], c[name])  # the CPU reader's pairs
        assert a["target"].shape == (B, 3, 96, 96) and a["target"].dtype == np.uint8
        # crops and colours were applied: far from the plain resized views
        assert np.abs(a["target"].astype(np.int16) - c["target"]).mean() > 10


def _flip_view_bytes(dataset, row: int):
    """Flip bytes inside view 0 of pair ``row`` (the tar structure stays intact)."""
    index = open_index(dataset)
    shard = index.shards[index.shard_ids[row]]
    off, size = int(index.offsets[row, 0]), int(index.sizes[row, 0])
    with open(shard, "r+b") as f:
        f.seek(off + size // 2)
        chunk = f.read(8)
        f.seek(off + size // 2)
        f.write(bytes(b ^ 0x5A for b in chunk))
    return index.keys[row]


def test_a_pair_that_fails_its_recorded_sha256_is_skipped_as_the_cpu_reader_does(
        mined_tum, tmp_path, caplog):
    damaged = tmp_path / "damaged"
    shutil.copytree(mined_tum, damaged)
    index = open_index(damaged)
    first = int(EpochSampler(len(index), B, 0, 1, 3).epoch_order(0)[1])  # in batch 0
    key = _flip_view_bytes(damaged, first)
    index = open_index(damaged)
    with caplog.at_level(logging.WARNING, logger="mimic_fast.data.dali"):
        ours = dali_batches(index, 2)
    assert f"skipping unreadable pair {index.where(first)}" in caplog.text
    assert "sha256" in caplog.text and key in caplog.text
    assert ours[0]["skipped"].sum() == 1 and first not in ours[0]["index"]
    assert_same_batches(ours, cpu_batches(open_index(damaged), 2))
    with pytest.raises(DamagedData, match="^unreadable pair .* [(]strict data[)]: .*sha256"):
        dali_batches(open_index(damaged), 1, strict=True)


class ListIndex:
    """The index interface (len, read, where) over pairs of encoded views in memory."""

    def __init__(self, pairs: list[tuple[bytes, bytes]]):
        self.pairs = pairs
        self.keys = [f"pair{k}" for k in range(len(pairs))]

    def __len__(self):
        return len(self.pairs)

    def read(self, i: int) -> tuple[bytes, bytes]:
        return self.pairs[i]

    def where(self, i: int) -> str:
        return self.keys[i]


def _bogus_huffman(jpeg: bytes) -> bytes:
    """A JPEG with a sound header and end marker whose Huffman table no decoder accepts."""
    data = bytearray(jpeg)
    dht = data.find(b"\xff\xc4")
    data[dht + 5:dht + 21] = b"\xff" * 16
    return bytes(data)


# A Radiance HDR whose header declares 15000 x 15000 (a 900 MB decode): refused unread.
HDR_BOMB = b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 15000 +X 15000\n" + bytes(64)


@pytest.fixture(scope="module")
def real_pairs(mined_tum):
    index = open_index(mined_tum)
    return [index.read(i) for i in range(len(index))]


def test_pixel_limit_and_undecodable_views_are_skipped_as_the_cpu_reader_does(real_pairs, caplog):
    """Over the pixel limit by the header (never decoded), and a view that passes every header
    check but that no decoder accepts (DALI fails its batch: the reader replays and skips it)."""
    pairs = list(real_pairs)
    order = EpochSampler(len(pairs), B, 0, 1, 3).epoch_order(0)
    big0, big1, bogus = (int(order[k]) for k in (1, 2, B + 1))  # batches 0, 0 and 1
    pairs[big0] = (HDR_BOMB, pairs[big0][1])
    pairs[big1] = (pairs[big1][0], HDR_BOMB)
    pairs[bogus] = (_bogus_huffman(pairs[bogus][0]), _bogus_huffman(pairs[bogus][1]))
    index = ListIndex(pairs)
    with caplog.at_level(logging.WARNING, logger="mimic_fast.data.dali"):
        ours = dali_batches(index, 2)
    for k in (big0, big1):
        assert f"skipping unreadable pair pair{k}: image too large: 15000x15000" in caplog.text
    assert f"skipping unreadable pair pair{bogus}: not a decodable image" in caplog.text
    assert "replaying" in caplog.text
    assert [int(b["skipped"].sum()) for b in ours] == [2, 1]
    assert_same_batches(ours, cpu_batches(index, 2))


def test_mae_batches_decode_only_the_masked_view(real_pairs):
    """One view per pair (MAE): a bad reference view is neither decoded nor a reason to skip,
    as in the CPU reader."""
    pairs = []
    for i, (a, b) in enumerate(real_pairs):  # the view not masked (epoch 0) over the limit
        masked = int(np.random.default_rng((3, 0, i)).random() < 0.5)  # PairTransform's draw
        pairs.append((a, HDR_BOMB) if masked == 0 else (HDR_BOMB, b))
    index = ListIndex(pairs)
    got = DaliPairs(index, B, 224, False, seed=3, device="cpu", num_threads=1)
    ds = PairDataset(index, PairTransform(224, two_views=False), 3)
    order = iter(EpochSampler(len(index), B, 0, 1, 3))
    for _ in range(2):
        batch = next(got)
        assert set(batch) == {"target", "target_view", "index", "skipped"}
        items = [ds[next(order)] for _ in range(B)]
        assert [it["skipped"] for it in items] == batch["skipped"].tolist() == [0] * B
        assert [it["index"] for it in items] == batch["index"].tolist()
        np.testing.assert_array_equal(batch["target"].numpy(),
                                      np.stack([it["target"].numpy() for it in items]))


def test_the_pixel_limit_is_the_callers(real_pairs):
    h, w = cv2.imdecode(np.frombuffer(real_pairs[0][0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    with pytest.raises(DataError, match="^16 consecutive unreadable pairs starting at pair"):
        dali_batches(ListIndex(real_pairs), 1, max_pixels=h * w - 1)
