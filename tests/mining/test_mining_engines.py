"""Engines: the local process pool and Ray give the serial run's dataset, byte for byte."""

from __future__ import annotations

import pytest

from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine

from test_mining_resume import dataset_files  # noqa: E402  (tests/mining is on sys.path)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("engines")
    for k, name in enumerate(("astronaut", "coffee", "rocket")):
        frames, _ = synthetic.camera_path(synthetic.photo(name), 8, (240, 320), seed=10 + k)
        synthetic.write_frames(frames, root / f"scene{k}")
    return [root, shared_data / "video/tum_freiburg_frames"]


@pytest.fixture(scope="module")
def serial(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial") / "ds"
    summary = mine(inputs, out, MineConfig(), RunOptions(progress=False))
    assert summary["accepted"] > 0 and summary["sources"] == 4
    return out


def test_process_pool_matches_serial(inputs, serial, tmp_path):
    out = tmp_path / "pool"
    s = mine(inputs, out, MineConfig(), RunOptions(progress=False, workers=2))
    assert s["workers"] == 2
    assert dataset_files(out) == dataset_files(serial)


@pytest.mark.slow
def test_ray_engine_matches_serial(inputs, serial, tmp_path):
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        out = tmp_path / "ray"
        s = mine(inputs, out, MineConfig(), RunOptions(progress=False, engine="ray"))
    finally:
        ray.shutdown()
    assert s["engine"] == "ray"
    assert dataset_files(out) == dataset_files(serial)


def test_gpu_mining_is_refused_clearly(inputs, tmp_path):
    with pytest.raises(NotImplementedError, match="GPU mining not implemented yet"):
        mine(inputs, tmp_path / "x", MineConfig(), RunOptions(device="cuda"))
