"""Degenerate input gives valid=False (H = 0, no inliers) without an exception, exactly as the
reference says; a degenerate pair does not disturb its neighbours in the batch."""

from __future__ import annotations

import numpy as np
from ransac_cases import synthetic_matches

import mimic_fast
from mimic_fast.geometry.reference_ransac import find_homographies_reference


def _invalid(out, b):
    assert not out.valid[b]
    assert out.num_inliers[b] == 0 and not out.inliers[b].any()
    np.testing.assert_array_equal(out.H[b], np.zeros((3, 3)))


def test_degenerate_pairs_in_one_batch():
    rng = np.random.default_rng(0)
    N = 40
    good_s, good_d, H, _ = synthetic_matches(rng, N, 0.3)
    t = np.linspace(0, 100, N)
    line = np.c_[t, 2 * t + 1]                         # all points on one line
    repeated = np.tile([[10.0, 20.0]], (N, 1))         # one point, repeated
    two = np.r_[np.tile([[0.0, 0.0]], (N // 2, 1)), np.tile([[5.0, 9.0]], (N // 2, 1))]
    nan_s = good_s.copy()
    nan_s[7, 1] = np.nan
    inf_d = good_d.copy()
    inf_d[3, 0] = np.inf
    src = np.stack([good_s, line, good_s, repeated, two, nan_s, good_s, good_s])
    dst = np.stack([good_d, good_d, line, repeated, two, good_d, inf_d, good_d])
    counts = np.array([N, N, N, N, N, N, N, 3])
    out = mimic_fast.find_homographies(src, dst, counts, max_iters=200)
    ref = find_homographies_reference(src, dst, counts, max_iters=200)
    for name in out._fields:
        np.testing.assert_array_equal(getattr(out, name), getattr(ref, name), err_msg=name)
    assert out.valid[0]
    for b in range(1, 8):
        _invalid(out, b)
    # The good pair's result is the one it gets alone.
    alone = mimic_fast.find_homographies(good_s[None], good_d[None], max_iters=200)
    np.testing.assert_array_equal(alone.H[0], out.H[0])


def test_nan_in_padding_is_ignored():
    rng = np.random.default_rng(1)
    s, d, _, _ = synthetic_matches(rng, 50, 0.2)
    src = np.full((1, 60, 2), np.nan)
    dst = np.full((1, 60, 2), np.inf)
    src[0, :50], dst[0, :50] = s, d
    out = mimic_fast.find_homographies(src, dst, [50])
    assert out.valid[0] and not out.inliers[0, 50:].any()
    np.testing.assert_array_equal(out.H, mimic_fast.find_homographies(s[None], d[None]).H)


def test_all_matches_on_one_line():
    """Every 4-sample is collinear and rejected: no model, whatever the iterations."""
    t = np.linspace(0, 100, 30)
    src = np.c_[t, t][None].copy()
    dst = np.c_[t, 3 * t][None].copy()
    out = mimic_fast.find_homographies(src, dst, max_iters=50)
    _invalid(out, 0)


def test_empty_batch_and_zero_matches():
    out = mimic_fast.find_homographies(np.zeros((0, 10, 2)), np.zeros((0, 10, 2)))
    assert out.H.shape == (0, 3, 3) and out.inliers.shape == (0, 10)
    out = mimic_fast.find_homographies(np.zeros((2, 0, 2), np.float32),
                                       np.zeros((2, 0, 2), np.float32))
    assert out.inliers.shape == (2, 0) and not out.valid.any()
