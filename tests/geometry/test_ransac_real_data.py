"""Accuracy on real SIFT matches (../shared/data): the kernel equals its reference, and its H
is as close to the ground truth as cv2.findHomography's on the same matches (median corner
error no worse than OpenCV's + 0.5 px), with an inlier count close to OpenCV's."""

from __future__ import annotations

import numpy as np
import pytest
from ransac_cases import corner_error
from ransac_real import real_matches

import mimic_fast
from mimic_fast.geometry.ransac import pad_matches
from mimic_fast.geometry.reference_ransac import find_homographies_reference

cv2 = pytest.importorskip("cv2")


@pytest.fixture(scope="module")
def matches(shared_data):
    return list(real_matches(shared_data))


def _batch(matches):
    return pad_matches([(s, d) for _, s, d, _, _ in matches])


def test_as_accurate_as_opencv(matches):
    src, dst, counts = _batch(matches)
    out = mimic_fast.find_homographies(src, dst, counts, threshold=5.0)
    ours, theirs = [], []
    for b, (name, s, d, H_true, (h, w)) in enumerate(matches):
        assert len(s) >= 50, (name, len(s))  # the data give real work
        Hc, mask = cv2.findHomography(s, d, cv2.RANSAC, 5.0)
        assert out.valid[b], name
        e_ours = corner_error(out.H[b], H_true, w, h)
        e_cv = corner_error(Hc, H_true, w, h)
        ours.append(e_ours)
        theirs.append(e_cv)
        n_cv = int(mask.sum())
        print(f"{name}: {len(s)} matches, inliers ours {out.num_inliers[b]} opencv {n_cv}, "
              f"corner error ours {e_ours:.3f} px opencv {e_cv:.3f} px")
        # inlier count close to OpenCV's (same rule, same threshold, both refit)
        assert abs(int(out.num_inliers[b]) - n_cv) <= max(5, 0.05 * n_cv), name
        assert e_ours < 5.0, name
    assert np.median(ours) <= np.median(theirs) + 0.5, (ours, theirs)


def test_kernel_equals_reference_on_real_matches(matches):
    src, dst, counts = _batch(matches[:3] + matches[-1:])
    out = mimic_fast.find_homographies(src, dst, counts, seed=21)
    ref = find_homographies_reference(src, dst, counts, seed=21)
    for name in out._fields:
        np.testing.assert_array_equal(getattr(out, name), getattr(ref, name), err_msg=name)
