"""Mining test inputs shared by several modules (mined once per session)."""

from __future__ import annotations

import pytest

from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine


@pytest.fixture(scope="session")
def scenes_and_tum(tmp_path_factory, shared_data):
    """Three generated camera paths over skimage photos and the real TUM frames: 4 sources."""
    root = tmp_path_factory.mktemp("scenes")
    for k, name in enumerate(("astronaut", "coffee", "rocket")):
        frames, _ = synthetic.camera_path(synthetic.photo(name), 8, (240, 320), seed=10 + k)
        synthetic.write_frames(frames, root / f"scene{k}")
    return [root, shared_data / "video/tum_freiburg_frames"]


@pytest.fixture(scope="session")
def mined_scenes_and_tum(scenes_and_tum, tmp_path_factory):
    """``scenes_and_tum`` mined serially (the reference dataset; tests only read it)."""
    out = tmp_path_factory.mktemp("serial") / "ds"
    summary = mine(scenes_and_tum, out, MineConfig(), RunOptions(progress=False))
    assert summary["accepted"] > 0 and summary["sources"] == 4
    return out
