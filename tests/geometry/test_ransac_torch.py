"""torch in, torch out: the custom op gives the numpy path's results; CUDA (marked, skipped
without a GPU) equals the CPU kernel bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from ransac_cases import batch_of_matches

import mimic_fast

torch = pytest.importorskip("torch")

needs_cuda = pytest.mark.skipif(
    not (torch.cuda.is_available() and mimic_fast.build_config()["cuda_devices"] > 0),
    reason="needs a CUDA GPU and a CUDA build of mimic_fast",
)


def _same(a, b):
    for name, x, y in zip(a._fields, a, b):
        x = x.cpu().numpy() if hasattr(x, "cpu") else x
        y = y.cpu().numpy() if hasattr(y, "cpu") else y
        np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_torch_cpu_equals_numpy(dtype):
    rng = np.random.default_rng(4)
    src, dst, counts, _ = batch_of_matches(rng, 5, 90, min_count=10)
    s = torch.from_numpy(src).to(dtype)
    d = torch.from_numpy(dst).to(dtype)
    out = mimic_fast.find_homographies(s, d, torch.from_numpy(counts), seed=7)
    assert isinstance(out.H, torch.Tensor) and out.H.dtype == torch.float64
    assert out.inliers.dtype == torch.bool and out.num_inliers.dtype == torch.int32
    _same(out, mimic_fast.find_homographies(s.numpy(), d.numpy(), counts, seed=7))
    # non-contiguous torch input, counts omitted
    t = torch.from_numpy(src).transpose(0, 1).contiguous().transpose(0, 1)
    assert not t.is_contiguous()
    _same(mimic_fast.find_homographies(t, torch.from_numpy(dst)),
          mimic_fast.find_homographies(src, dst))


def test_torch_compile_traces_through_the_op():
    rng = np.random.default_rng(5)
    src, dst, counts, _ = batch_of_matches(rng, 2, 50)
    s, d, c = (torch.from_numpy(x) for x in (src, dst, counts))

    def f(s, d, c):
        return torch.ops.mimic_fast.find_homographies(s, d, c, 5.0, 2000, 0.995, 0)

    out = torch.compile(f, backend="eager", fullgraph=True)(s, d, c)
    _same(mimic_fast.Homographies(*out), mimic_fast.find_homographies(src, dst, counts))


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_equals_cpu_bit_for_bit(dtype):
    rng = np.random.default_rng(6)
    src, dst, counts, _ = batch_of_matches(rng, 33, 1000, outliers=(0.2, 0.8), min_count=4)
    src[3, :2] = np.nan  # a degenerate pair among good ones
    s = torch.from_numpy(src).to(dtype)
    d = torch.from_numpy(dst).to(dtype)
    c = torch.from_numpy(counts)
    cpu = mimic_fast.find_homographies(s, d, c, seed=11)
    gpu = mimic_fast.find_homographies(s.cuda(), d.cuda(), c.cuda(), seed=11)
    assert gpu.H.device.type == "cuda"
    _same(gpu, cpu)
    # numpy in, device="cuda": the host-copy path
    _same(mimic_fast.find_homographies(s.numpy(), d.numpy(), counts, seed=11, device="cuda"), cpu)


@pytest.mark.cuda
@needs_cuda
def test_cuda_edge_cases():
    empty = torch.zeros(0, 8, 2, device="cuda")
    assert mimic_fast.find_homographies(empty, empty).H.shape == (0, 3, 3)
    few = torch.rand(3, 3, 2, device="cuda", dtype=torch.float64)
    assert not mimic_fast.find_homographies(few, few).valid.any()
