"""match_descriptors makes OpenCV's decisions (BFMatcher(NORM_L2).knnMatch(k=2) + ratio test)
on real SIFT descriptors, on integer descriptors full of ties and near-ties, with padding,
chunking, tiny inputs, numpy and torch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import mimic_fast
from mimic_fast.features import batched_matching
from mimic_fast.features.batched_matching import index_pairs, match_descriptors, pad_descriptors
from mimic_fast.features.matching import ratio_match
from mimic_fast.features.sift import sift


def opencv_rows(q: np.ndarray, t: np.ndarray, ratio: float = 0.7) -> np.ndarray:
    """[N1] matched train row or -1: knnMatch(k=2) then m.distance < ratio * n.distance."""
    out = np.full(len(q), -1, np.int64)
    if len(q) == 0 or len(t) == 0:
        return out
    for p in cv2.BFMatcher(cv2.NORM_L2).knnMatch(q, t, k=2):
        if len(p) == 2 and p[0].distance < ratio * p[1].distance:
            out[p[0].queryIdx] = p[0].trainIdx
    return out


def batch_vs_opencv(sets1: list, sets2: list, ratio: float = 0.7, fill: float = 0.0):
    """(batched [B, N1], OpenCV's rows padded with -1 to N1) for pairs (sets1[b], sets2[b]);
    padding rows hold ``fill``."""
    d1, c1 = pad_descriptors(sets1, sets1[0].shape[1])
    d2, c2 = pad_descriptors(sets2, sets2[0].shape[1])
    for d, c in ((d1, c1), (d2, c2)):
        d[np.arange(d.shape[1])[None, :] >= c[:, None]] = fill
    got = match_descriptors(d1, d2, c1, c2, ratio)
    want = np.full(got.shape, -1, np.int64)
    for b, (q, t) in enumerate(zip(sets1, sets2)):
        want[b, : len(q)] = opencv_rows(q.astype(np.float32), t.astype(np.float32), ratio)
    return got, want


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def real_features(shared_data):
    """OpenCV SIFT of real 224x224 views: TUM frames, the LightGlue pair, HPatches 1..6."""
    paths = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:8]
    paths += sorted((shared_data / "pairs/lightglue").glob("*.JPG"))
    paths += [shared_data / f"homography/hpatches_v_birdwoman/{k}.ppm" for k in range(1, 7)]
    feats = []
    for p in paths:
        grey = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        feats.append(sift(cv2.resize(grey, (224, 224), interpolation=cv2.INTER_LINEAR)))
    assert all(len(f) > 50 for f in feats)
    return feats


@pytest.mark.parametrize("ratio", [0.7, 0.8, 0.5, 1.0])
def test_real_sift_descriptors_equal_opencv(real_features, ratio):
    """64 ordered pairs of 16 real views in one batch (each view with its next four, across
    sources too): the same match for every keypoint as the mining's own ratio_match (OpenCV),
    padding rows filled with 255 to be noticed."""
    f = real_features
    pairs = [(i, (i + k) % len(f)) for i in range(len(f)) for k in (1, 2, 3, 4)]
    got, want = batch_vs_opencv([f[i].descriptors for i, _ in pairs],
                                [f[j].descriptors for _, j in pairs], ratio, fill=255.0)
    np.testing.assert_array_equal(got, want)
    assert (got >= 0).sum() > 500  # the check saw many matches, not only -1
    if ratio == 0.7:
        for b in (0, 17, len(pairs) - 1):
            i, j = pairs[b]
            np.testing.assert_array_equal(index_pairs(got[b]), ratio_match(f[i], f[j], ratio))


def test_ties_and_near_ties_equal_opencv():
    """Tiny integer alphabets make equal distances everywhere (best ties, second ties), and
    hand-made rows put the ratio exactly on 0.7 (7 vs 10: 7 < 0.7 * 10 is False in float64)."""
    rng = np.random.default_rng(1)
    sets1, sets2 = [], []
    for _ in range(60):
        d = int(rng.integers(1, 9))
        sets1.append(rng.integers(0, 3, (int(rng.integers(1, 12)), d)).astype(np.float32))
        sets2.append(rng.integers(0, 3, (int(rng.integers(2, 12)), d)).astype(np.float32))
    for s1, s2 in zip(sets1, sets2):  # per pair: D differs, so one pair per batch
        got, want = batch_vs_opencv([s1], [s2])
        np.testing.assert_array_equal(got, want)
    q = np.zeros((1, 4), np.float32)
    boundary = np.array([[7, 0, 0, 0], [0, 10, 0, 0]], np.float32)  # 7 < 7.0: no match
    just_in = np.array([[6.999, 0, 0, 0], [0, 10, 0, 0]], np.float32)  # 6.999 < 7.0
    for t, expect in ((boundary, -1), (just_in, 0)):
        got, want = batch_vs_opencv([q], [t])
        assert got[0, 0] == want[0, 0] == expect


def test_float32_distance_ties_of_different_squared_distances():
    """6000002 and 6000003 have the same float32 square root: OpenCV ranks the two rows as a
    tie (lower index first); the ratio then sees d1 == d2 and rejects."""
    def row(n: int) -> list:
        v = []
        for _ in range(128):
            x = min(255, int(np.sqrt(n)))
            v.append(x)
            n -= x * x
        assert n == 0
        return v

    n = 6000002
    assert np.sqrt(np.float32(n)) == np.sqrt(np.float32(n + 1))
    q = np.zeros((1, 128), np.float32)
    far = np.array([row(n + 1), row(n), row(n + 1)], np.float32)
    got, want = batch_vs_opencv([q], [far], ratio=1.0)
    np.testing.assert_array_equal(got, want)
    near = np.concatenate([far, np.full((1, 128), 1, np.float32)])  # a clear winner: row 3
    got, want = batch_vs_opencv([q], [near], ratio=1.0)
    assert got[0, 0] == want[0, 0] == 3


def test_random_integer_descriptors_and_the_float64_path():
    """SIFT-range integers (float32 path), negative integers and D = 256 (beyond the float32
    bound: float64 path), and uint8 input, all equal OpenCV."""
    rng = np.random.default_rng(2)
    for lo, hi, d in ((0, 256, 128), (-60, 60, 32), (0, 256, 256)):
        s1 = [rng.integers(lo, hi, (int(rng.integers(1, 40)), d)).astype(np.float32)
              for _ in range(5)]
        s2 = [rng.integers(lo, hi, (int(rng.integers(2, 40)), d)).astype(np.float32)
              for _ in range(5)]
        got, want = batch_vs_opencv(s1, s2, ratio=0.9)
        np.testing.assert_array_equal(got, want)
    q = rng.integers(0, 256, (3, 30, 128)).astype(np.uint8)
    t = rng.integers(0, 256, (3, 30, 128)).astype(np.uint8)
    t[:, :10] = q[:, :10]  # exact twins: certain matches
    got = match_descriptors(q, t, ratio=0.9)
    for b in range(3):
        np.testing.assert_array_equal(got[b], opencv_rows(q[b], t[b], 0.9))
    assert (got[:, :10] == np.arange(10)).all()


def test_batch_equals_singles_and_chunking(real_features, monkeypatch):
    f = real_features
    sets1 = [f[k].descriptors for k in range(6)]
    sets2 = [f[k + 1].descriptors[: 40 * (k + 1)] for k in range(6)]
    d1, c1 = pad_descriptors(sets1)
    d2, c2 = pad_descriptors(sets2)
    whole = match_descriptors(d1, d2, c1, c2)
    for b in range(6):
        single = match_descriptors(sets1[b][None], sets2[b][None])
        np.testing.assert_array_equal(whole[b, : c1[b]], single[0])
        assert (whole[b, c1[b]:] == -1).all()
    # blocks of a few pairs, then blocks of a few query rows of one pair
    for budget in (3 * d1.shape[1] * d2.shape[1], 37 * d2.shape[1]):
        monkeypatch.setitem(batched_matching._BLOCK_ELEMENTS, "cpu", budget)
        np.testing.assert_array_equal(match_descriptors(d1, d2, c1, c2), whole)


def test_counts_padding_and_tiny_inputs():
    rng = np.random.default_rng(3)
    d1 = rng.integers(0, 256, (4, 9, 128)).astype(np.float32)
    d2 = rng.integers(0, 256, (4, 9, 128)).astype(np.float32)
    d2[:, :5] = d1[:, :5]  # view-1 rows 0..4 have exact twins
    got = match_descriptors(d1, d2, counts1=[9, 3, 0, 9], counts2=[9, 9, 9, 1])
    assert got.dtype == np.int64 and got.shape == (4, 9)
    np.testing.assert_array_equal(got[0], opencv_rows(d1[0], d2[0]))
    np.testing.assert_array_equal(got[1, :3], [0, 1, 2])
    assert (got[1, 3:] == -1).all() and (got[2] == -1).all()
    assert (got[3] == -1).all()  # one view-2 row: never two neighbours, as the published code
    # a twin hidden in padding is not seen: row 4's twin is view-2 row 4 >= counts2 = 4
    got = match_descriptors(d1[:1], d2[:1], counts2=[4])
    assert got[0, 4] != 4 and (got[0, :4] == [0, 1, 2, 3]).all()
    assert match_descriptors(np.zeros((0, 5, 128), np.float32),
                             np.zeros((0, 5, 128), np.float32)).shape == (0, 5)
    assert match_descriptors(d1[:, :0], d2).shape == (4, 0)
    assert (match_descriptors(d1, d2[:, :0]) == -1).all()
    assert (match_descriptors(d1, d2[:, :1]) == -1).all()


def test_numpy_and_torch_in_and_out(real_features):
    f = real_features
    d1, c1 = pad_descriptors([f[0].descriptors, f[2].descriptors])
    d2, c2 = pad_descriptors([f[1].descriptors, f[3].descriptors])
    want = match_descriptors(d1, d2, c1, c2)
    assert isinstance(want, np.ndarray)
    got = match_descriptors(torch.from_numpy(d1), torch.from_numpy(d2), torch.from_numpy(c1),
                            torch.from_numpy(c2))
    assert isinstance(got, torch.Tensor) and got.dtype == torch.int64 and got.device.type == "cpu"
    np.testing.assert_array_equal(got.numpy(), want)
    # non-contiguous views and float64 change nothing; the top-level name is this function
    t1 = torch.from_numpy(d1).double().transpose(0, 1).contiguous().transpose(0, 1)
    np.testing.assert_array_equal(
        mimic_fast.match_descriptors(t1, torch.from_numpy(d2).double(), c1, c2).numpy(), want)
    np.testing.assert_array_equal(match_descriptors(d1[:, ::-1][:, ::-1], d2, c1, c2), want)


@pytest.mark.parametrize("call, message", [
    (lambda d: match_descriptors(d[0], d), "desc1 must have shape"),
    (lambda d: match_descriptors(d, d[:, :, :64]), "desc2 must have shape"),
    (lambda d: match_descriptors(d, d.astype(np.float64)), "desc2 must have desc1's dtype"),
    (lambda d: match_descriptors(d.astype(np.int32), d.astype(np.int32)), "float32, float64"),
    (lambda d: match_descriptors(d, torch.from_numpy(d)), "both numpy arrays or both torch"),
    (lambda d: match_descriptors(d.tolist(), d), "numpy array or a torch tensor"),
    (lambda d: match_descriptors(d, d, counts1=[3]), r"counts1 must have shape \[B\] = \[2\]"),
    (lambda d: match_descriptors(d, d, counts2=[3, 6]), r"counts2 must be in \[0, 5\]"),
    (lambda d: match_descriptors(d, d, counts2=[3.0, 2.0]), "counts2 must hold integers"),
    (lambda d: match_descriptors(d, d, ratio=1.5), r"ratio must be a number in \(0, 1\]"),
    (lambda d: match_descriptors(d, d, ratio=0), r"ratio must be a number in \(0, 1\]"),
    (lambda d: match_descriptors(np.where(d > 100, np.nan, d).astype(np.float32), d),
     "desc1 must be finite"),
])
def test_errors_name_the_argument(call, message):
    d = np.random.default_rng(4).integers(0, 256, (2, 5, 128)).astype(np.float32)
    with pytest.raises(ValueError, match=message):
        call(d)



def test_distances_are_opencvs_float32_square_roots():
    """Every integer squared distance below 2**22 (and a stretch near 2**24): the distance is
    the correctly rounded float32 root that OpenCV reports (torch's own float32 sqrt is not)."""
    for lo, hi in ((0, 1 << 22), ((1 << 24) - (1 << 20), 1 << 24)):
        sq = np.arange(lo, hi, dtype=np.float32)
        got = batched_matching.opencv_distance(torch.from_numpy(sq)).numpy()
        np.testing.assert_array_equal(got, np.sqrt(sq).astype(np.float64))


def test_float32_path_only_where_every_matmul_precision_is_exact():
    """SIFT's range takes the float32 path; values above 256 (inexact in bfloat16, which CUDA
    may use for float32 matmuls) or negative ones, and too many dimensions, take float64."""
    exact = batched_matching._exact_in_float32
    z = torch.zeros(1, 1, 128)
    assert exact(z, torch.full((1, 1, 128), 255.0))
    assert not exact(torch.zeros(1, 1, 4), torch.full((1, 1, 4), 300.0))
    assert not exact(z, torch.full((1, 1, 128), -1.0))
    assert not exact(torch.zeros(1, 1, 256), torch.full((1, 1, 256), 255.0))
    u8 = torch.full((1, 1, 4), 255, dtype=torch.uint8)
    assert exact(torch.zeros_like(u8), u8)


def test_score_blocks_stay_within_the_budget(monkeypatch):
    """Memory is bounded: every score block holds at most the budget's elements (a single
    pair over it is split by query rows), and each block is padded to its own pairs only."""
    rng = np.random.default_rng(6)
    sizes = rng.integers(2, 300, 40)
    sets = [rng.integers(0, 256, (int(n), 128)).astype(np.float32) for n in sizes]
    d1, c1 = pad_descriptors(sets)
    d2, c2 = pad_descriptors(sets[::-1])
    want = match_descriptors(d1, d2, c1, c2)
    shapes = []
    real = batched_matching._match_block

    def spy(a, b, c2, ratio):
        shapes.append((a.shape[0], a.shape[1], b.shape[1]))
        return real(a, b, c2, ratio)

    monkeypatch.setattr(batched_matching, "_match_block", spy)
    budget = 4 * 150 * 150
    monkeypatch.setitem(batched_matching._BLOCK_ELEMENTS, "cpu", budget)
    np.testing.assert_array_equal(match_descriptors(d1, d2, c1, c2), want)
    assert len(shapes) > 5 and all(p * r * n <= budget for p, r, n in shapes), shapes
    assert sum(p * r * n for p, r, n in shapes) < 0.7 * 40 * d1.shape[1] * d2.shape[1]
