"""mimic_fast.sift against OpenCV's SIFT on the same real frames: keypoints, descriptors,
homographies and repeatability; the pyramid pieces against OpenCV's; batch independence,
degenerate input and argument errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

import mimic_fast
from mimic_fast.features import _sift_pyramid as pyramid
from mimic_fast.features.batched_sift import sift

from sift_cases import (homography_pairs, homography_quality, native_sift, opencv_sift,
                        photo_warps, repeatability)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def real_cases(shared_data):
    """HPatches birdwoman 1 -> 2..6, graf 1 -> 3 (224x224) and 3 random warps of photos,
    each with OpenCV's and our features (ours from one batched call over the distinct
    frames)."""
    cases = list(homography_pairs(shared_data)) + list(photo_warps(3, seed=7))
    frames, slot = [], {}
    for _, a, b, _ in cases:
        for im in (a, b):
            if id(im) not in slot:
                slot[id(im)] = len(frames)
                frames.append(im)
    ours = native_sift(frames)
    theirs = [opencv_sift(im)[:2] for im in frames]
    return [(name, a, b, H, ours[slot[id(a)]], ours[slot[id(b)]], theirs[slot[id(a)]],
             theirs[slot[id(b)]]) for name, a, b, H in cases]


@pytest.fixture(scope="module")
def birdwoman(shared_data):
    """HPatches birdwoman 1 and 2 at 224x224 and our features of both (one call)."""
    _, a, b, _ = next(homography_pairs(shared_data))
    return a, b, sift(torch.from_numpy(np.stack([a, b])))


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[n, m] exact distances (torch.cdist's matmul form loses ~0.05 px at 200 px)."""
    return (a[:, None] - b[None]).norm(dim=2)


def _birdwoman(shared_data) -> np.ndarray:
    return next(homography_pairs(shared_data))[1]


def test_public_name_resolves():
    assert mimic_fast.sift is sift


def test_keypoints_coincide_with_opencv(birdwoman):
    """Nearly every OpenCV keypoint has one of ours at the same place, octave and scale,
    with the same angle and response (float rounding apart)."""
    img, _, f = birdwoman
    _, _, octv, kps = opencv_sift(img)
    n = int(f.counts[0])
    assert abs(n - len(kps)) <= 0.02 * len(kps), (n, len(kps))
    cxy = np.array([k.pt for k in kps])
    oxy = f.xy[0, :n].numpy()
    dist = np.linalg.norm(cxy[:, None] - oxy[None], axis=2)
    near = dist.min(1) < 0.05
    assert near.mean() >= 0.98, near.mean()
    j = dist.argmin(1)[near]
    ours_octave = f.octave[0, :n].numpy()[j]
    # low byte: the octave (signed, -1 = the upsampled one); next byte: the layer
    assert ((ours_octave & 0xFFFF) == (octv[near] & 0xFFFF)).mean() >= 0.98
    size = np.array([k.size for k in kps])[near]
    np.testing.assert_allclose(f.size[0, :n].numpy()[j], size, rtol=1e-3)
    resp = np.array([k.response for k in kps])[near]
    np.testing.assert_allclose(f.response[0, :n].numpy()[j], resp, rtol=1e-3, atol=1e-5)
    # a keypoint with two orientations appears twice at one place: compare best angles
    ang = np.array([k.angle for k in kps])[near]
    ours_ang = f.angle[0, :n].numpy()
    best = [np.abs((ours_ang[dist[i] < 0.05] - a + 180) % 360 - 180).min()
            for i, a in zip(np.flatnonzero(near), ang)]
    assert np.mean(np.array(best) < 0.5) >= 0.98


def test_descriptors_close_to_opencv(birdwoman):
    """Descriptors of coinciding keypoints (same place and angle) are OpenCV's: integer
    values 0..255, equal up to a few units from rounding."""
    _, img, f = birdwoman
    _, desc, _, kps = opencv_sift(img)
    n = int(f.counts[1])
    ours = f.descriptors[1, :n].numpy()
    assert f.descriptors.dtype == torch.float32
    assert np.array_equal(ours, np.round(ours)) and ours.min() >= 0 and ours.max() <= 255
    oxy, oang = f.xy[1, :n].numpy(), f.angle[1, :n].numpy()
    pairs = []
    for i, k in enumerate(kps):
        cand = np.flatnonzero((np.abs(oxy - k.pt).max(1) < 0.05) &
                              (np.abs((oang - k.angle + 180) % 360 - 180) < 0.1))
        if len(cand):
            pairs.append((i, cand[0]))
    assert len(pairs) >= 0.95 * len(kps)
    i, j = np.array(pairs).T
    diff = np.abs(desc[i] - ours[j]).max(1)
    assert np.mean(diff <= 2) >= 0.95, np.percentile(diff, [50, 90, 99])
    cos = (desc[i] * ours[j]).sum(1) / (np.linalg.norm(desc[i], axis=1) *
                                        np.linalg.norm(ours[j], axis=1))
    assert np.median(cos) > 0.9999 and cos.min() > 0.95


def test_homographies_as_good_as_opencv(real_cases):
    """Ratio matching + RANSAC on our features: corner error within 1 px of OpenCV SIFT's
    and at least 90% of its inliers, wherever OpenCV's features give a homography."""
    compared = 0
    for name, a, _, H, o1, o2, c1, c2 in real_cases:
        err_o, inl_o = homography_quality(o1, o2, H, a.shape)
        err_c, inl_c = homography_quality(c1, c2, H, a.shape)
        if not (np.isfinite(err_c) and err_c < 10):
            continue  # OpenCV's SIFT fails too at 224 px (birdwoman 1 -> 3)
        compared += 1
        assert err_o <= err_c + 1.0, (name, err_o, err_c)
        assert inl_o >= 0.9 * inl_c, (name, inl_o, inl_c)
    assert compared >= 8


def test_repeatability_as_opencv(real_cases):
    """Keypoint repeatability under the known homographies within 3 points of OpenCV's."""
    for name, a, b, H, o1, o2, c1, c2 in real_cases:
        ours = repeatability(o1[0], o2[0], H, a.shape, b.shape)
        theirs = repeatability(c1[0], c2[0], H, a.shape, b.shape)
        assert abs(ours - theirs) <= 0.03, (name, ours, theirs)


def test_batch_equals_singles(shared_data):
    """A frame's result does not depend on the rest of the batch: bit for bit."""
    frames = np.stack([_birdwoman(shared_data)[:96, :112],
                       np.zeros((96, 112), np.uint8),
                       next(photo_warps(1, seed=3))[2][:96, :112]])
    batch = sift(frames)
    for b in range(len(frames)):
        one = sift(frames[b:b + 1])
        n = int(one.counts[0])
        assert n == int(batch.counts[b])
        for field, x, y in zip(one._fields, one, batch):
            if field != "counts":
                assert torch.equal(x[0, :n], y[b, :n]), field
        assert not batch.xy[b, n:].any() and not batch.descriptors[b, n:].any()


@pytest.mark.parametrize("shape", [(1, 64, 64), (2, 100, 80), (1, 12, 12), (1, 3, 5), (1, 1, 1)])
def test_blank_and_tiny_frames_give_no_keypoints(shape):
    f = sift(np.full(shape, 128, np.uint8))
    assert f.counts.tolist() == [0] * shape[0]
    assert f.xy.shape == (shape[0], 0, 2) and f.descriptors.shape == (shape[0], 0, 128)


def test_empty_batch():
    f = sift(np.zeros((0, 32, 32), np.uint8))
    assert f.counts.shape == (0,) and f.xy.shape == (0, 0, 2)


def test_inputs_uint8_float_numpy_torch_agree(shared_data):
    img = _birdwoman(shared_data)[:80, :96]
    ref = sift(img[None])
    assert int(ref.counts[0]) > 20
    for other in (sift(img), sift(torch.from_numpy(img)[None].float()),
                  sift(img[None].astype(np.float64), device="cpu")):
        for x, y in zip(ref, other):
            assert torch.equal(x, y)


def test_frame_gives_the_views_features(birdwoman):
    """frame(b) is what mining's per-view Features hold: float32 numpy, frame b's rows."""
    from mimic_fast.features.sift import Features

    _, _, f = birdwoman
    xy, desc = f.frame(1)
    n = int(f.counts[1])
    assert xy.dtype == desc.dtype == np.float32 and xy.shape == (n, 2) and desc.shape == (n, 128)
    assert np.array_equal(xy, f.xy[1, :n].numpy()) and len(Features(xy, desc)) == n


def test_max_features_keeps_the_strongest(birdwoman):
    img, _, full = birdwoman
    top = sift(img[None], max_features=50, uint8_descriptors=True)
    assert int(top.counts[0]) == 50
    r = full.response[0, :int(full.counts[0])]
    assert torch.all(r[:-1] >= r[1:])  # strongest first
    assert torch.equal(top.response[0], r[:50])
    assert top.descriptors.dtype == torch.uint8
    assert torch.equal(top.descriptors[0].float(), full.descriptors[0, :50])
    assert int(sift(img[None, :64, :64], max_features=0).counts[0]) == 0


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 1, 8, 8), np.uint8), "shape"),
    (np.zeros((8, 8), np.int32), "uint8 or float"),
    ([[0, 1], [2, 3]], "numpy array or torch tensor"),
])
def test_bad_input_is_refused(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        sift(bad)


def test_bad_max_features_is_refused():
    with pytest.raises(ValueError, match="max_features"):
        sift(np.zeros((1, 8, 8), np.uint8), max_features=-1)


# ---- the pyramid pieces against OpenCV's own functions ----

@pytest.mark.parametrize("n, radius", [(10, 3), (5, 12), (3, 12), (1, 4)])
def test_reflect101_index_matches_opencv_border(n, radius):
    row = np.arange(n, dtype=np.float32)[None]
    cv = cv2.copyMakeBorder(row, 0, 0, radius, radius, cv2.BORDER_REFLECT_101)[0]
    assert pyramid._reflect101_index(n, radius, "cpu").tolist() == cv.astype(int).tolist()


@pytest.mark.parametrize("sigma", [1.2489996, 1.2262735, 3.0887])
def test_gaussian_blur_matches_opencv(sigma):
    rng = np.random.default_rng(0)
    img = (rng.random((37, 53)) * 255).astype(np.float32)
    ours = pyramid.gaussian_blur(torch.from_numpy(img)[None], sigma)[0].numpy()
    np.testing.assert_allclose(ours, cv2.GaussianBlur(img, (0, 0), sigma, sigma), atol=2e-3)


@pytest.mark.parametrize("shape", [(3, 37, 53), (2, 3, 5)])
def test_blur_paths_agree(shape):
    """The convolution path (used on CUDA) and the exact shifted-sum path (CPU) are the
    same blur up to float rounding."""
    rng = np.random.default_rng(2)
    img = torch.from_numpy((rng.random(shape) * 255).astype(np.float32))
    exact = pyramid.gaussian_blur(img, 3.0887, exact=True)
    conv = pyramid.gaussian_blur(img, 3.0887, exact=False)
    torch.testing.assert_close(conv, exact, atol=1e-3, rtol=0)


def test_cuda_blur_path_on_cpu_gives_the_same_keypoints(birdwoman, monkeypatch):
    """The whole SIFT with the convolution blur that CUDA uses, run here on the CPU: the
    keypoints of the exact path, up to float rounding."""
    img, _, exact = birdwoman
    real_blur = pyramid.gaussian_blur
    monkeypatch.setattr(pyramid, "gaussian_blur",
                        lambda x, sigma: real_blur(x, sigma, exact=False))
    conv = sift(img[None])
    n_e, n_c = int(exact.counts[0]), int(conv.counts[0])
    assert abs(n_e - n_c) <= 0.01 * n_e + 1
    d = _distances(exact.xy[0, :n_e], conv.xy[0, :n_c])
    assert (d.min(1).values < 0.01).float().mean() >= 0.98


def test_base_image_matches_opencv_upsampling():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (20, 31), dtype=np.uint8)
    up = cv2.resize(img.astype(np.float32), (62, 40), interpolation=cv2.INTER_LINEAR)
    cv = cv2.GaussianBlur(up, (0, 0), np.sqrt(1.6 ** 2 - 1), np.sqrt(1.6 ** 2 - 1))
    ours = pyramid.upsampled_base(torch.from_numpy(img)[None].float(), 1.6)[0].numpy()
    np.testing.assert_allclose(ours, cv, atol=2e-3)


def test_octave_count_is_opencvs():
    # OpenCV: round(log2(min side of the 2x base) - 2) + 1
    assert pyramid.octave_count(224, 224) == 8
    assert pyramid.octave_count(640, 800) == 9
    assert pyramid.octave_count(1, 1) == 0


def test_memory_chunks_do_not_change_the_result(shared_data, monkeypatch):
    """Frames split into several pyramid passes, and window samples gathered a few at a
    time, give the same bits as one pass."""
    from mimic_fast.features import _sift_descriptors, _sift_keypoints, batched_sift

    frames = np.stack([_birdwoman(shared_data)[:64, :80],
                       next(photo_warps(1, seed=5))[1][:64, :80],
                       _birdwoman(shared_data)[100:164, 60:140]])
    whole = sift(frames)
    assert int(whole.counts.min()) > 5
    monkeypatch.setattr(batched_sift, "MAX_BASE_PIXELS", 4 * 64 * 80)  # one frame a pass
    for module in (_sift_keypoints, _sift_descriptors):
        monkeypatch.setattr(module, "sample_budget", lambda device: 3000)
    parts = sift(frames)
    for field, x, y in zip(whole._fields, whole, parts):
        assert torch.equal(x, y), field


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_agrees_with_cpu_and_opencv(real_cases):
    """The same frames on the GPU: the CPU's keypoints up to float rounding (the GPU's
    blur, exp and atomic histogram sums round differently), and homographies as good as
    OpenCV SIFT's."""
    frames, slot = [], {}
    for _, a, b, *_ in real_cases:
        for im in (a, b):
            if id(im) not in slot:
                slot[id(im)] = len(frames)
                frames.append(im)
    cpu = sift(np.stack(frames))
    gpu = sift(torch.from_numpy(np.stack(frames)).cuda())
    assert gpu.xy.is_cuda and gpu.descriptors.is_cuda and gpu.counts.is_cuda
    for b in range(len(frames)):
        n_c, n_g = int(cpu.counts[b]), int(gpu.counts[b])
        assert abs(n_c - n_g) <= 0.01 * n_c + 1, (b, n_c, n_g)
        d = _distances(cpu.xy[b, :n_c], gpu.xy[b, :n_g].cpu())
        assert (d.min(1).values < 0.01).float().mean() >= 0.98
    feats = [(gpu.xy[b, :n].cpu().numpy(), gpu.descriptors[b, :n].cpu().numpy())
             for b, n in enumerate(gpu.counts.tolist())]
    for name, a, b, H, _, _, c1, c2 in real_cases:
        err_g, inl_g = homography_quality(feats[slot[id(a)]], feats[slot[id(b)]], H, a.shape)
        err_c, inl_c = homography_quality(c1, c2, H, a.shape)
        if np.isfinite(err_c) and err_c < 10:
            assert err_g <= err_c + 1.0 and inl_g >= 0.9 * inl_c, (name, err_g, err_c)
