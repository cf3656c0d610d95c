"""Brute-force L2 k=2 matching with Lowe's ratio test (the MIMIC scripts' matcher), one pair
per call with OpenCV: the definition that the batched twin,
:func:`mimic_fast.features.batched_matching.match_descriptors`, is tested against."""

from __future__ import annotations

import numpy as np

from mimic_fast.features.sift import Features

_MATCHER = None


def ratio_match(f1: Features, f2: Features, ratio: float = 0.7) -> np.ndarray:
    """Indices [M, 2] (into f1, into f2) of matches whose best distance < ratio * second best.

    Queries with fewer than two neighbours (f2 has one keypoint) never pass, as in the
    published code. Matches are in query order.
    """
    import cv2

    global _MATCHER
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    if len(f1) == 0 or len(f2) < 2:
        return np.zeros((0, 2), np.int64)
    if _MATCHER is None:
        _MATCHER = cv2.BFMatcher(cv2.NORM_L2)
    knn = _MATCHER.knnMatch(f1.descriptors, f2.descriptors, k=2)
    good = [(m.queryIdx, m.trainIdx) for m, n in (p for p in knn if len(p) == 2)
            if m.distance < ratio * n.distance]
    return np.array(good, np.int64).reshape(-1, 2)
