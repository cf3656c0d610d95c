"""Robust homography from point matches: cv2.findHomography with RANSAC."""

from __future__ import annotations

import numpy as np


def ransac_homography(
    xy1: np.ndarray, xy2: np.ndarray, threshold: float = 5.0
) -> tuple[np.ndarray | None, np.ndarray]:
    """(H [3, 3] float64 mapping xy1 -> xy2 with H[2, 2] = 1, inlier mask [M] bool), or
    (None, all-False mask) when fewer than 4 points are given or RANSAC finds no model.

    xy1, xy2: [M, 2] float32 matched pixel coordinates. Deterministic: OpenCV's RANSAC draws
    from its own generator with a fixed seed on every call (not cv2.setRNGSeed's global one),
    so the same points give the same answer wherever and in whatever order they are computed.
    """
    import cv2

    xy1 = np.ascontiguousarray(xy1, np.float32).reshape(-1, 1, 2)
    xy2 = np.ascontiguousarray(xy2, np.float32).reshape(-1, 1, 2)
    if xy1.shape != xy2.shape:
        raise ValueError(f"xy1 and xy2 must have the same shape, got {xy1.shape} and {xy2.shape}")
    none = np.zeros(xy1.shape[0], bool)
    if xy1.shape[0] < 4:
        return None, none
    H, mask = cv2.findHomography(xy1, xy2, cv2.RANSAC, float(threshold))
    if H is None or mask is None or not np.all(np.isfinite(H)) or abs(H[2, 2]) < 1e-12:
        return None, none
    return H / H[2, 2], mask.ravel().astype(bool)
