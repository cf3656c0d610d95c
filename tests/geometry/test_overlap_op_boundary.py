"""The native boundary: the torch custom op, reachable directly as
torch.ops.mimic_fast.patch_overlap, refuses every argument the public function refuses (it used
to check only H: samples=0 crashed the process); the numpy reference never raises on a bad H."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import mimic_fast
from mimic_fast.geometry.reference import patch_overlap_reference

pytest.importorskip("torch")

# (h1, w1, h2, w2, patch, samples, seed, grid) after a valid H, and the expected message.
BAD_OP_ARGUMENTS = [
    ((224, 224, 224, 224, 16, 0, 0, False), r"samples must be in \[1, 1024\], got 0"),
    ((224, 224, 224, 224, 16, -3, 0, True), r"samples must be in \[1, 1024\], got -3"),
    ((224, 224, 224, 224, 16, 1025, 0, False), r"samples must be in \[1, 1024\], got 1025"),
    ((224, 224, 224, 224, -16, 100, 0, False), r"patch_size must be in \[1, 32768\], got -16"),
    ((224, 224, 224, 224, 0, 100, 0, False), r"patch_size must be in \[1, 32768\], got 0"),
    ((224, 224, 224, 224, 300, 100, 0, False),
     r"image_size of view 1 must be at least one patch \(300x300\), got h=224, w=224"),
    ((224, 224, 224, 8, 16, 100, 0, False), r"image_size of view 2 must be at least one patch"),
    ((0, 224, 224, 224, 16, 100, 0, False), r"image_size \(view 1 h\) must be in"),
    ((224, 224, 224, -224, 16, 100, 0, False), r"image_size \(view 2 w\) must be in"),
    ((50000, 50000, 224, 224, 1, 100, 0, False), r"image_size of view 1 gives 2500000000 patches"),
]

_SCRIPT = """
import json, sys, torch
import mimic_fast.geometry.overlap_torch  # registers the op
op = torch.ops.mimic_fast.patch_overlap.default
H = torch.eye(3, dtype=torch.float64)[None]
results = []
for args in json.loads(sys.argv[1]):
    try:
        out = op(H, *args)
        results.append("returned overlap " + repr(out[0].tolist()))
    except ValueError as exc:
        results.append("ValueError: " + str(exc))
    print(results[-1], file=sys.stderr, flush=True)  # the last line before a crash
print(json.dumps(results))
"""


def test_the_custom_op_refuses_bad_arguments_without_crashing():
    # In a subprocess: a crash in the kernel must fail this test, not end pytest.
    args = json.dumps([list(a) for a, _ in BAD_OP_ARGUMENTS])
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, args], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}; stderr:\n{proc.stderr[-3000:]}"
    results = json.loads(proc.stdout.splitlines()[-1])
    for (a, pattern), got in zip(BAD_OP_ARGUMENTS, results):
        assert got.startswith("ValueError: "), f"{a}: {got}"
        assert re.search(pattern, got), f"{a}: {got}"


def test_the_custom_op_still_computes_valid_arguments():
    import torch

    import mimic_fast.geometry.overlap_torch  # noqa: F401

    H = torch.tensor([[[1.0, 0, 16], [0, 1, 0], [0, 0, 1]]], dtype=torch.float64)
    out = torch.ops.mimic_fast.patch_overlap.default(H, 224, 224, 224, 224, 16, 100, 2**63 - 1,
                                                     False)
    assert out[5].tolist() == [[182, 182]]


def test_the_fake_kernel_checks_too():
    # torch.compile traces through the fake kernel: a bad argument fails there, not later.
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    import mimic_fast.geometry.overlap_torch  # noqa: F401

    with FakeTensorMode():
        H = torch.empty(2, 3, 3, dtype=torch.float64)
        with pytest.raises(ValueError, match=r"samples must be in \[1, 1024\], got 0"):
            torch.ops.mimic_fast.patch_overlap.default(H, 224, 224, 224, 224, 16, 0, 0, False)
        out = torch.ops.mimic_fast.patch_overlap.default(H, 224, 224, 160, 320, 16, 100, 0, False)
        assert out[2].shape == (2, 196) and out[3].shape == (2, 200)


@pytest.mark.parametrize("H", [
    np.eye(3) * 5e-324,                                      # smallest subnormal: det * s is 0
    np.diag([5e-324, 5e-324, 1e-323]),
    np.array([[5e-324, 0, 0], [0, 5e-324, 0], [0, 0, 0]]),  # subnormal and singular
    np.eye(3) * 1e-310,                                      # subnormal, inverse overflows
    np.ones((3, 3)) * 1e-315,                                # rank 1, subnormal
    np.array([[1.0, 2, 3], [2, 4, 6], [0, 0, 1]]),           # rank 2
])
def test_reference_gives_invalid_for_subnormal_or_singular_H(H):
    ref = patch_overlap_reference(H)
    assert not ref.valid and ref.overlap == 0 and ref.counts.tolist() == [0, 0]
    kernel = mimic_fast.patch_overlap(H)
    assert not kernel.valid and kernel.counts.tolist() == [0, 0]
