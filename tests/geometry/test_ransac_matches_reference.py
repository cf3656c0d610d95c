"""The CPU kernel equals the numpy reference (the definition) bit for bit: random synthetic
matches with 20-80% outliers drawn fresh per run, awkward shapes, dtypes and layouts."""

from __future__ import annotations

import numpy as np
import pytest
from ransac_cases import batch_of_matches, synthetic_matches

import mimic_fast
from mimic_fast.geometry.reference_ransac import find_homographies_reference


@pytest.fixture
def rng(request):
    seed = int(np.random.SeedSequence().entropy % 2**32)  # fresh per run, reported on failure
    request.node.user_properties.append(("rng_seed", seed))
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


def assert_same(out, ref):
    assert out.H.dtype == np.float64 and out.inliers.dtype == np.bool_
    assert out.num_inliers.dtype == np.int32 and out.valid.dtype == np.bool_
    np.testing.assert_array_equal(out.valid, ref.valid)
    np.testing.assert_array_equal(out.num_inliers, ref.num_inliers)
    np.testing.assert_array_equal(out.inliers, ref.inliers)
    # Same operations in the same order: the same bits (the tolerance only reports size).
    np.testing.assert_allclose(out.H, ref.H, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_random_matches(rng, dtype):
    src, dst, counts, Htrue = batch_of_matches(rng, 7, 150, outliers=(0.2, 0.8), min_count=60)
    src, dst = src.astype(dtype), dst.astype(dtype)
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    out = mimic_fast.find_homographies(src, dst, counts, seed=seed)
    assert_same(out, find_homographies_reference(src, dst, counts, seed=seed))
    assert out.H.shape == (7, 3, 3) and out.inliers.shape == (7, 150)
    assert out.valid.all()
    assert (out.inliers.sum(1) == out.num_inliers).all()
    assert not out.inliers[np.arange(150)[None, :] >= counts[:, None]].any()  # padding
    np.testing.assert_array_equal(out.H[:, 2, 2], 1.0)


@pytest.mark.parametrize("threshold,max_iters,confidence", [(2.0, 50, 0.9), (8.0, 2000, 0.999),
                                                            (0.5, 7, 0.5)])
def test_parameters(rng, threshold, max_iters, confidence):
    src, dst, counts, _ = batch_of_matches(rng, 3, 80, outliers=(0.3, 0.7))
    kw = dict(threshold=threshold, max_iters=max_iters, confidence=confidence, seed=5)
    assert_same(mimic_fast.find_homographies(src, dst, counts, **kw),
                find_homographies_reference(src, dst, counts, **kw))


@pytest.mark.parametrize("B", [0, 1, 5])
def test_batch_sizes(rng, B):
    src, dst, counts, _ = batch_of_matches(rng, B, 40, min_count=4)
    out = mimic_fast.find_homographies(src, dst, counts)
    assert out.H.shape == (B, 3, 3) and out.inliers.shape == (B, 40)
    assert out.num_inliers.shape == (B,) and out.valid.shape == (B,)
    assert_same(out, find_homographies_reference(src, dst, counts))


def test_four_matches_and_padding(rng):
    """N = 4 (the minimal set: all four are inliers of the exact solve), and counts below 4."""
    s, d, H, _ = synthetic_matches(rng, 4, 0.0, noise=0.0)
    src = np.stack([s, s, s])
    dst = np.stack([d, d, d])
    counts = np.array([4, 3, 0])
    out = mimic_fast.find_homographies(src, dst, counts)
    assert_same(out, find_homographies_reference(src, dst, counts))
    assert out.valid.tolist() == [True, False, False]
    assert out.num_inliers.tolist() == [4, 0, 0]
    np.testing.assert_allclose(out.H[0], H, rtol=1e-6, atol=1e-6)


def test_non_contiguous_inputs(rng):
    src, dst, counts, _ = batch_of_matches(rng, 4, 60, min_count=30)
    big_s = np.zeros((4, 60, 5))
    big_s[..., 1:5:3] = src  # columns 1 and 4
    big_d = np.asfortranarray(dst)
    out = mimic_fast.find_homographies(big_s[..., 1:5:3], big_d, counts.astype(np.int32))
    assert not big_s[..., 1:5:3].flags.c_contiguous
    assert_same(out, mimic_fast.find_homographies(np.ascontiguousarray(src),
                                                  np.ascontiguousarray(dst), counts))


def test_batch_equals_singles(rng):
    """A pair's result does not depend on its position in the batch or on its padding."""
    src, dst, counts, _ = batch_of_matches(rng, 6, 120, min_count=20)
    out = mimic_fast.find_homographies(src, dst, counts, seed=3)
    perm = rng.permutation(6)
    shuffled = mimic_fast.find_homographies(src[perm], dst[perm], counts[perm], seed=3)
    for i, b in enumerate(perm):
        n = counts[b]
        one = mimic_fast.find_homographies(src[b:b + 1, :n], dst[b:b + 1, :n], seed=3)
        np.testing.assert_array_equal(one.H[0], out.H[b])
        np.testing.assert_array_equal(one.inliers[0], out.inliers[b, :n])
        np.testing.assert_array_equal(shuffled.H[i], out.H[b])
        np.testing.assert_array_equal(shuffled.inliers[i], out.inliers[b])
        assert one.num_inliers[0] == out.num_inliers[b] == shuffled.num_inliers[i]


def test_threads_do_not_change_results(rng):
    src, dst, counts, _ = batch_of_matches(rng, 9, 100, min_count=10)
    n = mimic_fast.get_num_threads()
    try:
        mimic_fast.set_num_threads(1)
        one = mimic_fast.find_homographies(src, dst, counts)
    finally:
        mimic_fast.set_num_threads(n)
    assert_same(mimic_fast.find_homographies(src, dst, counts), one)


def test_seed_changes_samples_not_the_answer(rng):
    src, dst, H, inl = synthetic_matches(rng, 300, 0.5, noise=0.5)
    a = mimic_fast.find_homographies(src[None], dst[None], seed=1)
    b = mimic_fast.find_homographies(src[None], dst[None], seed=2)
    assert a.valid[0] and b.valid[0]
    # Both recover the true model: inliers are (nearly all) the true inliers.
    for r in (a, b):
        assert (r.inliers[0] & ~inl).sum() <= 0.03 * 300
        assert (r.inliers[0] & inl).sum() >= 0.9 * inl.sum()
