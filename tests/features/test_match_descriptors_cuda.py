"""match_descriptors on CUDA makes the CPU's decisions (which are OpenCV's, see
test_match_descriptors.py): the same torch code, run on the GPU."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from mimic_fast.features.batched_matching import match_descriptors, pad_descriptors
from mimic_fast.features.sift import sift

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _cpu_and_cuda(d1, d2, c1=None, c2=None, ratio=0.7):
    t1, t2 = torch.from_numpy(d1), torch.from_numpy(d2)
    c1 = None if c1 is None else torch.from_numpy(np.asarray(c1))
    c2 = None if c2 is None else torch.from_numpy(np.asarray(c2))
    cpu = match_descriptors(t1, t2, c1, c2, ratio)
    gpu = match_descriptors(t1.cuda(), t2.cuda(), None if c1 is None else c1.cuda(),
                            None if c2 is None else c2.cuda(), ratio)
    assert gpu.device.type == "cuda" and gpu.dtype == torch.int64
    return cpu, gpu.cpu()


def test_cuda_equals_cpu_on_real_sift(shared_data):
    paths = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))
    paths += [shared_data / f"homography/hpatches_v_birdwoman/{k}.ppm" for k in range(1, 7)]
    feats = [sift(cv2.resize(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), (224, 224)))
             for p in paths]
    pairs = [(i, j) for i in range(len(feats)) for j in range(len(feats)) if i != j]
    d1, c1 = pad_descriptors([feats[i].descriptors for i, _ in pairs])
    d2, c2 = pad_descriptors([feats[j].descriptors for _, j in pairs])
    for ratio in (0.7, 0.9):
        cpu, gpu = _cpu_and_cuda(d1, d2, c1, c2, ratio)
        assert torch.equal(cpu, gpu)
        assert int((cpu >= 0).sum()) > 1000


def test_cuda_equals_cpu_on_ties_float64_path_and_large_blocks():
    rng = np.random.default_rng(0)
    ties = rng.integers(0, 3, (64, 40, 8)).astype(np.float32)  # equal distances everywhere
    cpu, gpu = _cpu_and_cuda(ties, ties[::-1].copy(), rng.integers(0, 41, 64),
                             rng.integers(0, 41, 64), 1.0)
    assert torch.equal(cpu, gpu)
    wide = rng.integers(0, 256, (4, 300, 256)).astype(np.float32)  # beyond float32: float64
    cpu, gpu = _cpu_and_cuda(wide, wide[:, ::-1].copy() + (rng.random(wide.shape) < 0.01))
    assert torch.equal(cpu, gpu)
    # 64 pairs x 2000 x 2000: several CUDA blocks; a few pairs checked on the CPU
    big1 = rng.integers(0, 256, (64, 2000, 128)).astype(np.float32)
    big2 = big1 + rng.integers(-3, 4, big1.shape).astype(np.float32).clip(-big1, 255 - big1)
    gpu = match_descriptors(torch.from_numpy(big1).cuda(), torch.from_numpy(big2).cuda()).cpu()
    for b in (0, 31, 63):
        cpu = match_descriptors(big1[b:b + 1], big2[b:b + 1])
        np.testing.assert_array_equal(gpu[b:b + 1].numpy(), cpu)
    assert float((gpu >= 0).float().mean()) > 0.9
