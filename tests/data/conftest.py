"""A pair dataset mined (with the real mining pipeline) from the TUM frames in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def mined_tum(shared_data, tmp_path_factory) -> Path:
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.run import mine

    out = tmp_path_factory.mktemp("mined") / "tum"
    summary = mine([shared_data / "video" / "tum_freiburg_frames"], out, MineConfig(kind="frames"),
                   RunOptions(progress=False))
    assert summary["accepted"] >= 8, summary  # the tests below need a few batches of pairs
    return out
