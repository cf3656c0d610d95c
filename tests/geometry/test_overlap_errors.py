"""Bad input raises a clear error naming the argument; bad homographies never raise."""

from __future__ import annotations

import numpy as np
import pytest
from overlap_cases import shift

import mimic_fast


@pytest.mark.parametrize("H, message", [
    (np.eye(4), r"H must have shape \[3, 3\] or \[B, 3, 3\], got \[4, 4\]"),
    (np.zeros((2, 3)), r"H must have shape .*got \[2, 3\]"),
    (np.zeros((2, 2, 3, 3)), r"H must have shape .*got \[2, 2, 3, 3\]"),
    (np.eye(3, dtype=np.int64), r"H must be float32 or float64, got int64"),
    (np.eye(3, dtype=np.float16), r"H must be float32 or float64, got float16"),
    ([[1, 0, 0], [0, 1, 0], [0, 0, 1]], r"H must be a numpy array or a torch tensor, got builtins.list"),
])
def test_bad_homography_arrays(H, message):
    with pytest.raises(ValueError, match=message):
        mimic_fast.patch_overlap(H)


@pytest.mark.parametrize("kwargs, message", [
    ({"image_size": (8, 224)}, r"image_size of view 1 must be at least one patch \(16x16\), got h=8, w=224"),
    ({"image_size": ((224, 224), (224, 15))}, r"image_size of view 2 must be at least one patch"),
    ({"image_size": (224,)}, r"image_size must be \(h, w\) or \(\(h1, w1\), \(h2, w2\)\)"),
    ({"image_size": (224.0, 224)}, r"image_size \(view 1 h\) must be an int, got float"),
    ({"patch_size": 0}, r"patch_size must be in \[1, 32768\], got 0"),
    ({"samples": 0}, r"samples must be in \[1, 1024\], got 0"),
    ({"samples": 1025}, r"samples must be in \[1, 1024\], got 1025"),
    ({"image_size": (50000, 50000), "patch_size": 1}, r"image_size of view 1 gives 2500000000 patches"),
    ({"seed": -1}, r"seed must be in \[0, 18446744073709551615\], got -1"),
    ({"seed": 2**64}, r"seed must be in"),
    ({"sampling": "sobol"}, r"sampling must be one of \('random', 'grid'\), got 'sobol'"),
    ({"device": "tpu"}, r"device must be None, 'cpu' or 'cuda' for numpy input .*got 'tpu'"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mimic_fast.patch_overlap(np.eye(3), **kwargs)


def test_cuda_without_gpu_is_a_clear_error_not_a_fallback():
    if mimic_fast.build_config()["cuda_devices"] > 0:
        pytest.skip("a CUDA device is present here")
    with pytest.raises(RuntimeError, match="device='cuda' was requested but"):
        mimic_fast.patch_overlap(np.eye(3), device="cuda")


@pytest.mark.parametrize("bad", [
    np.full((3, 3), np.nan),
    np.array([[1.0, 0, np.inf], [0, 1, 0], [0, 0, 1]]),
    np.zeros((3, 3)),
    np.array([[1.0, 2, 3], [2, 4, 6], [0, 0, 1]]),   # rank 2
    np.array([[1.0, 0, 0], [0, 1, 0], [0, 0, 0]]),   # maps everything to infinity
    np.array([[1e-9, 0, 0], [0, 1e-9, 0], [0, 0, 1]]),  # numerically singular
])
def test_non_finite_or_singular_H_is_invalid_and_leaves_the_batch_alone(bad):
    H = np.stack([shift(16, 0), bad, np.eye(3)])
    out = mimic_fast.patch_overlap(H)
    assert out.valid.tolist() == [True, False, True]
    assert out.overlap[1] == 0 and out.counts[1].tolist() == [0, 0]
    assert (out.forward[1] == -1).all() and (out.backward[1] == -1).all()
    assert (out.correspondences[1] == -1).all()
    assert out.counts[0].tolist() == [182, 182] and out.counts[2].tolist() == [196, 196]


def test_huge_entries_are_invalid_like_the_reference():
    from mimic_fast.geometry.reference import patch_overlap_reference

    H = np.diag([1e308, 1e308, 1e308])
    assert not mimic_fast.patch_overlap(H).valid
    assert not patch_overlap_reference(H).valid


def test_the_custom_op_checks_its_input_too():
    torch = pytest.importorskip("torch")
    import mimic_fast.geometry.overlap_torch  # noqa: F401  (registers the op)

    op = torch.ops.mimic_fast.patch_overlap.default
    with pytest.raises(ValueError, match=r"contiguous \[B, 3, 3\] tensor, got \[3, 3\]"):
        op(torch.eye(3, dtype=torch.float64), 224, 224, 224, 224, 16, 100, 0, False)
    with pytest.raises(ValueError, match="float32 or float64"):
        op(torch.zeros(1, 3, 3, dtype=torch.float16), 224, 224, 224, 224, 16, 100, 0, False)


def test_scaled_H_is_the_same_homography():
    H = shift(16, 0)
    a = mimic_fast.patch_overlap(H * 1e6)
    b = mimic_fast.patch_overlap(H * 1e-6)
    assert a.valid and b.valid
    assert a.counts.tolist() == b.counts.tolist() == [182, 182]


def test_build_config_reports_the_build():
    cfg = mimic_fast.build_config()
    assert cfg["openmp"] is True and cfg["openmp_max_threads"] >= 1
    assert isinstance(cfg["cuda"], bool) and cfg["version"] == mimic_fast.__version__
    if cfg["cuda"]:
        assert cfg["cuda_architectures"] == "sm_80,sm_90"
    with pytest.raises(ValueError, match="num_threads must be an int >= 1, got 0"):
        mimic_fast.set_num_threads(0)
