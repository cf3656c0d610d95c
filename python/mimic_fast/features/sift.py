"""SIFT keypoints and descriptors (OpenCV, default parameters as in the MIMIC scripts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_DETECTOR = None  # one cv2.SIFT per process; creating it is not free


@dataclass(frozen=True)
class Features:
    """Keypoints of one view: xy [N, 2] float32 pixel coordinates (x right, y down) and
    descriptors [N, 128] float32 (N may be 0)."""

    xy: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.xy.shape[0])


def sift(gray: np.ndarray) -> Features:
    """SIFT on a grayscale uint8 [h, w] image with cv2.SIFT_create() defaults."""
    import cv2

    global _DETECTOR
    gray = np.asarray(gray)
    if gray.dtype != np.uint8 or gray.ndim != 2:
        raise ValueError(f"gray must be a uint8 [h, w] image, got {gray.dtype} {list(gray.shape)}")
    if _DETECTOR is None:
        _DETECTOR = cv2.SIFT_create()
    keypoints, desc = _DETECTOR.detectAndCompute(gray, None)
    if desc is None or not keypoints:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    xy = np.array([k.pt for k in keypoints], np.float32).reshape(-1, 2)
    return Features(xy, np.ascontiguousarray(desc, np.float32))


def sift_rgb(rgb: np.ndarray) -> Features:
    """SIFT of an RGB uint8 [h, w, 3] view, converted to grayscale as the published scripts."""
    import cv2

    return sift(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY))
