"""Shared test set-up: the real data beside the repository, and Triton's CPU interpreter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Triton kernels run under the interpreter on machines without a GPU; this must be set before
# triton is imported anywhere.
if not os.environ.get("TRITON_INTERPRET"):
    try:
        import torch

        if not torch.cuda.is_available():
            os.environ["TRITON_INTERPRET"] = "1"
    except ImportError:
        pass

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (real test data nobody here made); tests fail loudly without it."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA} (expected ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def mined_tum(shared_data, tmp_path_factory) -> Path:
    """A pair dataset mined with the real pipeline from the TUM frames in ../shared/data."""
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.run import mine

    out = tmp_path_factory.mktemp("mined") / "tum"
    summary = mine([shared_data / "video" / "tum_freiburg_frames"], out,
                   MineConfig(kind="frames"), RunOptions(progress=False))
    assert summary["accepted"] >= 8, summary  # the data/train tests need a few batches
    return out


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module (use with ``pytestmark =
    pytest.mark.usefixtures("one_torch_thread")``): its tensors are small, and on a busy
    machine OpenMP's barriers made 2 threads many times slower than 1 (measured 12x)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
