"""Bad arguments raise ValueError naming the argument, what was expected and what came; the
torch custom op, reachable directly, runs the same checks."""

from __future__ import annotations

import numpy as np
import pytest

import mimic_fast

S = np.zeros((2, 10, 2))


@pytest.mark.parametrize("kwargs,match", [
    (dict(src=np.zeros((10, 2)), dst=np.zeros((10, 2))), r"src must have shape \[B, N, 2\], got \[10, 2\]"),
    (dict(src=np.zeros((2, 10, 3)), dst=np.zeros((2, 10, 3))), r"src must have shape \[B, N, 2\], got \[2, 10, 3\]"),
    (dict(dst=np.zeros((2, 9, 2))), r"dst must have src's shape \[2, 10, 2\], got \[2, 9, 2\]"),
    (dict(src=S.astype(np.int32), dst=S.astype(np.int32)), "src must be float32 or float64, got int32"),
    (dict(dst=S.astype(np.float32)), "dst must have src's dtype float64, got float32"),
    (dict(src=[[[0.0, 0.0]]]), "src must be a numpy array or a torch tensor, got builtins.list"),
    (dict(counts=[1, 2, 3]), r"counts must have shape \[B\] = \[2\], got \[3\]"),
    (dict(counts=[1.0, 2.0]), "counts must hold integers, got float64"),
    (dict(counts=[1, 11]), r"counts must be in \[0, N\] = \[0, 10\], got values in \[1, 11\]"),
    (dict(counts=[-1, 3]), r"counts must be in \[0, N\] = \[0, 10\], got values in \[-1, 3\]"),
    (dict(threshold=0.0), "threshold must be a finite number > 0, got 0.0"),
    (dict(threshold=float("nan")), "threshold must be a finite number > 0, got nan"),
    (dict(max_iters=0), r"max_iters must be in \[1, 1073741824\], got 0"),
    (dict(max_iters=2**31 - 1), r"max_iters must be in \[1, 1073741824\]"),
    (dict(max_iters=2.5), "max_iters must be an int, got float 2.5"),
    (dict(confidence=1.0), "confidence must be a number with 0 < confidence < 1, got 1.0"),
    (dict(confidence=0), "confidence must be a number with 0 < confidence < 1, got 0"),
    (dict(seed=-1), r"seed must be in \[0, 18446744073709551615\], got -1"),
    (dict(device="tpu"), "device must be None, 'cpu' or 'cuda' for numpy input"),
])
def test_numpy_argument_errors(kwargs, match):
    args = dict(src=S, dst=S)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        mimic_fast.find_homographies(**args)


def test_cuda_without_gpu_raises_not_falls_back():
    if mimic_fast.build_config()["cuda_devices"] > 0:
        pytest.skip("a GPU is visible: device='cuda' is legal here")
    with pytest.raises(RuntimeError, match="device='cuda' was requested"):
        mimic_fast.find_homographies(S, S, device="cuda")


def test_torch_argument_errors():
    torch = pytest.importorskip("torch")
    s = torch.zeros(2, 10, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="src and dst must be both numpy arrays or both torch"):
        mimic_fast.find_homographies(s, S)
    with pytest.raises(ValueError, match="src must be float32 or float64, got float16"):
        mimic_fast.find_homographies(s.half(), s.half())
    with pytest.raises(ValueError, match=r"counts must be in \[0, N\]"):
        mimic_fast.find_homographies(s, s, torch.tensor([3, 12]))
    with pytest.raises(ValueError, match="device must be None, 'cpu' or 'cuda'"):
        mimic_fast.find_homographies(s, s, device="meta")
    # The custom op directly: the same check, and no out-of-bounds read.
    op = torch.ops.mimic_fast.find_homographies
    with pytest.raises(ValueError, match=r"counts must be in \[0, N\]"):
        op(s, s, torch.tensor([3, 99]), 5.0, 100, 0.99, 0)
    with pytest.raises(ValueError, match="threshold must be a finite number > 0"):
        op(s, s, torch.tensor([3, 9]), -1.0, 100, 0.99, 0)
    with pytest.raises(ValueError, match="counts must be int64, got torch.int32"):
        op(s, s, torch.tensor([3, 9], dtype=torch.int32), 5.0, 100, 0.99, 0)
