"""retain_freed_memory: the SIFT-like pattern (many ~1 MB buffers, freed together) stops
faulting its pages in again on every round. Run in fresh interpreters: the setting is
process-wide and permanent."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mimic_fast._allocator import is_glibc

ROUNDS = r"""
import resource, sys
import numpy as np
from mimic_fast._allocator import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
def one_round():
    bufs = [np.ones(200_000, np.float32) for _ in range(16)]  # 16 x 800 kB, touched
    del bufs
one_round()  # first round faults in either case; glibc adapts its thresholds here
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    one_round()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True,
                         check=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not is_glibc(), reason="glibc's malloc only")
def test_freed_buffers_are_reused_without_page_faults():
    default, retained = _faults("default"), _faults("retain")
    # 10 rounds x 16 x 800 kB = 31k pages if every round faults them in again
    assert default > 20_000, default
    assert retained < default / 20, (retained, default)
