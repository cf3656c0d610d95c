"""pytest-benchmark cases of bench_overlap.py (`pytest benchmarks --benchmark-only`; not part
of the CI test run)."""

from __future__ import annotations

import pytest
from bench_overlap import camera_motion_homographies

import mimic_fast

H = camera_motion_homographies(1024)


@pytest.mark.parametrize("threads", [1, None])
def test_cpu_kernel_1024_pairs(benchmark, threads):
    before = mimic_fast.get_num_threads()
    mimic_fast.set_num_threads(threads or before)
    try:
        out = benchmark(mimic_fast.patch_overlap, H)
    finally:
        mimic_fast.set_num_threads(before)
    assert out.valid.all()


@pytest.mark.skipif(mimic_fast.build_config()["cuda_devices"] == 0, reason="needs a CUDA GPU")
def test_cuda_kernel_65536_pairs(benchmark):
    import torch

    Hg = torch.from_numpy(camera_motion_homographies(65536)).cuda()

    def run():
        out = mimic_fast.patch_overlap(Hg)
        torch.cuda.synchronize()
        return out

    assert bool(benchmark(run).valid.all())
