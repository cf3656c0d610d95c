"""Real SIFT matches with ground-truth homographies from ../shared/data (HPatches
v_birdwoman 1 -> k, Oxford graf 1 -> 3), shared by the accuracy test and the benchmark."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimic_fast.geometry.homography import rescale_homography

MAX_SIDE = 640  # views resized so the long side is at most this (ground truth adjusted)


def _grey(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    h, w = img.shape
    s = min(1.0, MAX_SIDE / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    return img, (h, w)


def real_pairs(root: Path):
    """(name, img1, img2, H_true between the resized views) for each real pair."""
    import cv2

    hp = root / "homography" / "hpatches_v_birdwoman"
    img1, full1 = _grey(hp / "1.ppm")
    for k in range(2, 7):
        imgk, fullk = _grey(hp / f"{k}.ppm")
        H = rescale_homography(np.loadtxt(hp / f"H_1_{k}"), full1, fullk, img1.shape, imgk.shape)
        yield f"birdwoman_1_{k}", img1, imgk, H
    graf = root / "homography" / "opencv_graf"
    fs = cv2.FileStorage(str(graf / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
    H13 = fs.getNode("H13").mat()
    fs.release()
    g1, full_g1 = _grey(graf / "graf1.png")
    g3, full_g3 = _grey(graf / "graf3.png")
    yield "graf_1_3", g1, g3, rescale_homography(H13, full_g1, full_g3, g1.shape, g3.shape)


def real_matches(root: Path):
    """(name, src [M, 2] float32, dst [M, 2] float32, H_true, (h, w) of view 1): OpenCV SIFT
    and the ratio test (0.7), as mimic_fast.features does."""
    from mimic_fast.features.matching import ratio_match
    from mimic_fast.features.sift import sift

    for name, a, b, H in real_pairs(root):
        fa, fb = sift(a), sift(b)
        m = ratio_match(fa, fb, 0.7)
        yield name, fa.xy[m[:, 0]], fb.xy[m[:, 1]], H, a.shape
