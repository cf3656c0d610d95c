"""Real frames with known homographies and the quality measures that compare a SIFT with
OpenCV's (homography corner error and inliers after ratio matching and RANSAC, keypoint
repeatability), shared by tests/features/test_batched_sift.py and benchmarks/bench_sift.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimic_fast.geometry.homography import rescale_homography

SIDE = 224  # the mining views' size


def _grey(path: Path, side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    full = img.shape
    if side is not None:
        img = cv2.resize(img, (side, side), interpolation=cv2.INTER_AREA)
    return img, full


def homography_pairs(root: Path, side: int | None = SIDE):
    """(name, img1, img2, H_true img1 -> img2) for HPatches v_birdwoman 1 -> 2..6 and graf
    1 -> 3 from ../shared/data/homography, resized to side x side (None: full size)."""
    import cv2

    hp = root / "homography" / "hpatches_v_birdwoman"
    img1, full1 = _grey(hp / "1.ppm", side)
    for k in range(2, 7):
        imgk, fullk = _grey(hp / f"{k}.ppm", side)
        H = np.loadtxt(hp / f"H_1_{k}")
        if side is not None:
            H = rescale_homography(H, full1, fullk, img1.shape, imgk.shape)
        yield f"birdwoman_1_{k}", img1, imgk, H
    graf = root / "homography" / "opencv_graf"
    fs = cv2.FileStorage(str(graf / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
    H13 = fs.getNode("H13").mat()
    fs.release()
    g1, full_g1 = _grey(graf / "graf1.png", side)
    g3, full_g3 = _grey(graf / "graf3.png", side)
    if side is not None:
        H13 = rescale_homography(H13, full_g1, full_g3, g1.shape, g3.shape)
    yield "graf_1_3", g1, g3, H13


def photo_warps(count: int, seed: int = 0, side: int = SIDE):
    """(name, view1, view2, H_true view1 -> view2): two views of a real photo (scikit-image's
    bundled astronaut, camera, coffee, chelsea), view 2 under a random homography (rotation
    up to 25 degrees, scale 0.8-1.25, perspective), both inside the photo."""
    import cv2
    from skimage import data

    photos = [data.astronaut(), data.camera(), data.coffee(), data.chelsea()]
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo = photos[i % len(photos)]
        if photo.ndim == 3:
            photo = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        big = 2 * side
        photo = cv2.resize(photo, (big, big), interpolation=cv2.INTER_AREA)
        c = big / 2
        to_view = np.array([[1, 0, side / 2 - c], [0, 1, side / 2 - c], [0, 0, 1.0]])
        a = np.deg2rad(rng.uniform(-25, 25))
        s = np.exp(rng.uniform(np.log(0.8), np.log(1.25)))
        rot = np.array([[s * np.cos(a), -s * np.sin(a), 0], [s * np.sin(a), s * np.cos(a), 0],
                        [0, 0, 1.0]])
        persp = np.array([[1, 0, 0], [0, 1, 0], [*rng.uniform(-4e-4, 4e-4, 2), 1.0]])
        shift = np.array([[1, 0, rng.uniform(-20, 20)], [0, 1, rng.uniform(-20, 20)], [0, 0, 1]])
        H2 = to_view @ shift @ persp @ rot @ np.linalg.inv(to_view)  # view1 -> view2
        view1 = cv2.warpPerspective(photo, to_view, (side, side), flags=cv2.INTER_LINEAR)
        view2 = cv2.warpPerspective(photo, H2 @ to_view, (side, side), flags=cv2.INTER_LINEAR)
        yield f"photo{i}", view1, view2, H2 / H2[2, 2]


def opencv_sift(gray: np.ndarray):
    """(xy [N, 2], descriptors [N, 128], octave [N] int, keypoints) of cv2.SIFT_create()."""
    import cv2

    kps, desc = cv2.SIFT_create().detectAndCompute(gray, None)
    if desc is None:
        desc = np.zeros((0, 128), np.float32)
    xy = np.array([k.pt for k in kps], np.float32).reshape(-1, 2)
    return xy, desc, np.array([k.octave for k in kps], np.int64), kps


def native_sift(grays) -> list[tuple[np.ndarray, np.ndarray]]:
    """[(xy, descriptors)] per frame from ONE batched mimic_fast.sift call."""
    import mimic_fast

    f = mimic_fast.sift(np.stack(grays))
    return [(f.xy[b, :n].numpy(), f.descriptors[b, :n].numpy())
            for b, n in enumerate(f.counts.tolist())]


def corner_error(H: np.ndarray, H_true: np.ndarray, w: float, h: float) -> float:
    """Mean distance between the image corners mapped by H and by H_true (pixels)."""
    c = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1.0]])
    a = c @ np.asarray(H, np.float64).T
    b = c @ np.asarray(H_true, np.float64).T
    return float(np.linalg.norm(a[:, :2] / a[:, 2:] - b[:, :2] / b[:, 2:], axis=1).mean())


def homography_quality(f1, f2, H_true, shape) -> tuple[float, int]:
    """(corner error in px against H_true, RANSAC inliers) of features (xy, desc) of two
    views: ratio-0.7 matching (the project's matcher) and cv2.findHomography RANSAC 5 px
    (OpenCV's RNG seeded so both SIFTs see the same sampling)."""
    import cv2

    from mimic_fast.features.matching import ratio_match
    from mimic_fast.features.sift import Features

    m = ratio_match(Features(*f1), Features(*f2), 0.7)
    if len(m) < 4:
        return float("inf"), 0
    cv2.setRNGSeed(0)
    H, mask = cv2.findHomography(f1[0][m[:, 0]], f2[0][m[:, 1]], cv2.RANSAC, 5.0)
    if H is None:
        return float("inf"), 0
    return corner_error(H / H[2, 2], H_true, shape[1], shape[0]), int(mask.sum())


def _warp(xy: np.ndarray, H: np.ndarray) -> np.ndarray:
    p = np.c_[xy, np.ones(len(xy))] @ H.T
    return p[:, :2] / p[:, 2:]


def repeatability(xy1, xy2, H, shape1, shape2, tol: float = 1.5) -> float:
    """Share of keypoints seen in both views that reappear: keypoints of view 1 that map
    inside view 2 and vice versa; a view-1 keypoint repeats when one of view 2 lies within
    tol px of its mapped position. Repeated / the smaller of the two common counts."""
    def inside(p, shape):
        return ((p[:, 0] >= 0) & (p[:, 1] >= 0) & (p[:, 0] <= shape[1] - 1)
                & (p[:, 1] <= shape[0] - 1))

    p1 = _warp(xy1, H)
    in1 = inside(p1, shape2)
    in2 = inside(_warp(xy2, np.linalg.inv(H)), shape1)
    n = min(int(in1.sum()), int(in2.sum()))
    if n == 0:
        return 0.0
    q = xy2[in2]
    d = np.linalg.norm(p1[in1][:, None] - q[None], axis=2)
    return float((d.min(1) <= tol).sum()) / n if len(q) else 0.0
