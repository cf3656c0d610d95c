"""Small homography utilities (numpy): resizing views, composing, normalising."""

from __future__ import annotations

import numpy as np


def scale_matrix(src_hw: tuple[int, int], dst_hw: tuple[int, int]) -> np.ndarray:
    """3x3 map of pixel coordinates of an image of size src_hw (h, w) resized ("squashed")
    to dst_hw. Pixel coordinates are scaled as x * dst_w / src_w (the convention of
    cv2.resize on integer pixel positions used throughout MIMIC's reference code)."""
    (sh, sw), (dh, dw) = src_hw, dst_hw
    return np.diag([dw / sw, dh / sh, 1.0])


def rescale_homography(
    H: np.ndarray,
    src1_hw: tuple[int, int],
    src2_hw: tuple[int, int],
    dst1_hw: tuple[int, int] = (224, 224),
    dst2_hw: tuple[int, int] = (224, 224),
) -> np.ndarray:
    """H between full-size views (view 1 of size src1_hw -> view 2 of size src2_hw) turned
    into the H between the resized views: S2 @ H @ inv(S1), normalised so H[2, 2] = 1."""
    S1 = scale_matrix(src1_hw, dst1_hw)
    S2 = scale_matrix(src2_hw, dst2_hw)
    out = S2 @ np.asarray(H, dtype=np.float64) @ np.linalg.inv(S1)
    return out / out[2, 2]
