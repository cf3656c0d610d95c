"""Real ground-truth homographies (HPatches v_birdwoman, Oxford graf) rescaled to 224x224."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import mimic_fast
from mimic_fast.geometry.homography import rescale_homography
from mimic_fast.geometry.reference import patch_overlap_reference


def _grey(path):
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None, path
    return img


def _real_pairs(root):
    hp = root / "homography" / "hpatches_v_birdwoman"
    img1 = _grey(hp / "1.ppm")
    for k in range(2, 7):
        imgk = _grey(hp / f"{k}.ppm")
        H = rescale_homography(np.loadtxt(hp / f"H_1_{k}"), img1.shape, imgk.shape)
        yield f"birdwoman_1_{k}", H, img1, imgk
    graf = root / "homography" / "opencv_graf"
    fs = cv2.FileStorage(str(graf / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
    H13 = fs.getNode("H13").mat()
    fs.release()
    g1, g3 = _grey(graf / "graf1.png"), _grey(graf / "graf3.png")
    yield "graf_1_3", rescale_homography(H13, g1.shape, g3.shape), g1, g3


@pytest.fixture(scope="module")
def real_pairs(shared_data):
    return list(_real_pairs(shared_data))


def test_kernel_equals_reference_on_real_homographies(real_pairs):
    H = np.stack([h for _, h, _, _ in real_pairs])
    out = mimic_fast.patch_overlap(H, seed=11)
    ref = patch_overlap_reference(H, seed=11)
    for name, a, b in zip(out._fields, out, ref):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert out.valid.all()
    assert ((out.overlap > 0.1) & (out.overlap < 1.0)).all(), out.overlap


def test_corresponding_patches_show_the_same_scene(real_pairs):
    """Matched patches hold the same content: after undoing the local warp (warping view 1
    into view 2 with the ground-truth H), a matched view-2 patch agrees far better with the
    warped view-1 pixels at the same place than unmatched patches do with each other."""
    for name, H, img1, img2 in real_pairs:
        v1 = cv2.resize(img1, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
        v2 = cv2.resize(img2, (224, 224), interpolation=cv2.INTER_AREA).astype(np.float32)
        warped = cv2.warpPerspective(v1, H, (224, 224))
        out = mimic_fast.patch_overlap(H)
        src = np.nonzero(out.correspondences >= 0)[0]
        dst = out.correspondences[src]
        assert len(dst) >= 20, name

        def patches(img, idx):
            r, c = np.divmod(idx, 14)
            return np.stack([img[i * 16:(i + 1) * 16, j * 16:(j + 1) * 16] for i, j in zip(r, c)])

        def ncc(a, b):
            a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(1, keepdims=True)
            b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(1, keepdims=True)
            return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1) + 1e-6)

        # the centre of each view-1 patch projects into (or right beside) its partner patch
        r, c = np.divmod(src, 14)
        centres = np.stack([c * 16 + 8, r * 16 + 8], 1).astype(np.float64)[None]
        proj = cv2.perspectiveTransform(centres, H)[0]
        r2, c2 = np.divmod(dst, 14)
        assert (np.abs(proj - np.stack([c2 * 16 + 8, r2 * 16 + 8], 1)) <= 16).all(), name

        matched = ncc(patches(warped, dst), patches(v2, dst))
        shuffled = ncc(patches(warped, dst), patches(v2, np.roll(dst, 7)))
        assert np.median(matched) > 0.5, (name, np.median(matched))
        assert np.median(matched) > np.median(shuffled) + 0.3, name
