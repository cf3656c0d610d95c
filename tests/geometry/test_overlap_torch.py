"""Torch tensors in, torch tensors out (through a torch.library custom op); CUDA marked."""

from __future__ import annotations

import numpy as np
import pytest
from overlap_cases import random_homographies

import mimic_fast

torch = pytest.importorskip("torch")

needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and mimic_fast.build_config()["cuda_devices"] > 0),
    reason="needs a CUDA GPU and a CUDA build of mimic_fast",
)


def _rng(request):
    seed = int(np.random.SeedSequence().entropy % 2**32)
    print(f"rng seed {seed}")
    return np.random.default_rng(seed)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_cpu_matches_numpy(request, dtype):
    H = random_homographies(_rng(request), 10)
    Ht = torch.from_numpy(H).to(dtype)
    out = mimic_fast.patch_overlap(Ht, seed=4)
    ref = mimic_fast.patch_overlap(Ht.numpy(), seed=4)
    expected_dtypes = [torch.float32, torch.bool, torch.int32, torch.int32, torch.int32,
                       torch.int32]
    for name, a, b, dt in zip(out._fields, out, ref, expected_dtypes):
        assert isinstance(a, torch.Tensor) and a.dtype == dt and a.device.type == "cpu", name
        np.testing.assert_array_equal(a.numpy(), b, err_msg=name)


def test_torch_single_and_non_contiguous(request):
    H = torch.from_numpy(random_homographies(_rng(request), 6))
    single = mimic_fast.patch_overlap(H[2])
    assert single.overlap.shape == () and single.forward.shape == (196,)
    strided = H.transpose(1, 2).contiguous().transpose(1, 2)[::2]
    assert not strided.is_contiguous()
    a = mimic_fast.patch_overlap(strided)
    b = mimic_fast.patch_overlap(H[::2].contiguous().numpy())
    np.testing.assert_array_equal(a.correspondences.numpy(), b.correspondences)


def test_custom_op_passes_opcheck():
    H = torch.from_numpy(random_homographies(np.random.default_rng(0), 3))
    torch.library.opcheck(torch.ops.mimic_fast.patch_overlap.default,
                          (H, 224, 224, 224, 224, 16, 100, 0, False))


def test_torch_compile_traces_through_patch_overlap():
    H = torch.from_numpy(random_homographies(np.random.default_rng(1), 5))

    def kept_fraction(h):
        r = mimic_fast.patch_overlap(h)
        return mimic_fast.keep_pair(r.overlap).float().mean(), r.overlap

    compiled = torch.compile(kept_fraction, backend="aot_eager", fullgraph=True)
    frac, ov = compiled(H)
    frac_e, ov_e = kept_fraction(H)
    assert torch.equal(ov, ov_e) and torch.equal(frac, frac_e)


def test_large_seed_round_trips_through_the_op():
    H = torch.from_numpy(random_homographies(np.random.default_rng(2), 4))
    seed = 2**64 - 12345
    a = mimic_fast.patch_overlap(H, seed=seed)
    b = mimic_fast.patch_overlap(H.numpy(), seed=seed)
    np.testing.assert_array_equal(a.correspondences.numpy(), b.correspondences)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cuda_equals_cpu_bit_for_bit(request, dtype):
    H = torch.from_numpy(random_homographies(_rng(request), 257)).to(dtype)
    for sampling in ("random", "grid"):
        cpu = mimic_fast.patch_overlap(H, seed=9, sampling=sampling)
        gpu = mimic_fast.patch_overlap(H.cuda(), seed=9, sampling=sampling)
        for name, a, b in zip(cpu._fields, cpu, gpu):
            assert b.device.type == "cuda", name
            assert torch.equal(a, b.cpu()), name


@pytest.mark.cuda
@needs_cuda
def test_cuda_edge_cases():
    from overlap_cases import zoom_about

    H = np.stack([np.eye(3), np.full((3, 3), np.nan), zoom_about(8.0), zoom_about(2.0)])
    for size, patch in (((224, 224), 16), (((230, 250), (100, 37)), 8)):
        cpu = mimic_fast.patch_overlap(H, image_size=size, patch_size=patch, seed=3)
        via_host = mimic_fast.patch_overlap(H, image_size=size, patch_size=patch, seed=3,
                                            device="cuda")
        on_gpu = mimic_fast.patch_overlap(torch.from_numpy(H).cuda(), image_size=size,
                                          patch_size=patch, seed=3)
        for name, a, b, c in zip(cpu._fields, cpu, via_host, on_gpu):
            np.testing.assert_array_equal(a, b, err_msg=name)
            np.testing.assert_array_equal(a, c.cpu().numpy(), err_msg=name)
    empty = mimic_fast.patch_overlap(torch.zeros(0, 3, 3, device="cuda"))
    assert empty.overlap.shape == (0,) and empty.overlap.device.type == "cuda"


@pytest.mark.cuda
@needs_cuda
def test_cuda_device_argument_moves_cpu_tensors():
    H = torch.from_numpy(random_homographies(np.random.default_rng(3), 8))
    out = mimic_fast.patch_overlap(H, device="cuda")
    assert out.overlap.device.type == "cpu"  # results come back on H's device
    np.testing.assert_array_equal(out.counts.numpy(), mimic_fast.patch_overlap(H).counts.numpy())
