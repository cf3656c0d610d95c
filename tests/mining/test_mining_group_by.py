"""--group-by: one flat folder of many scenes, split into groups by a capture group of the file
name, mines exactly what the groups would give in folders of their own."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mimic_fast.io.sources import Source, discover
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine


def _pairs(out: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    return sorted((tuple(r["frames"]), round(r["overlap"], 6)) for r in rows)


@pytest.fixture(scope="module")
def scenes(shared_data, tmp_path_factory) -> Path:
    """TUM frames as two interleaved 'scenes' in one flat folder, plus a file of no scene."""
    frames = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:10]
    flat = tmp_path_factory.mktemp("flat")
    for i, f in enumerate(frames):
        shutil.copy(f, flat / f"target{i % 2}_{i:02d}.png")
    shutil.copy(frames[0], flat / "README.png")
    return flat


def test_groups_are_sources_of_their_own_and_unmatched_files_are_reported(scenes):
    sources, errors = discover([scenes], "group", r"^target(\d+)_")
    assert sources == [Source(str(scenes), "group", "0"), Source(str(scenes), "group", "1")]
    assert len({s.id for s in sources} | {Source(str(scenes), "group").id}) == 3
    assert errors == [{"input": str(scenes), "files": 1, "error":
                       "1 images match no --group-by group (e.g. README.png); they are not mined"}]


def test_group_by_mines_what_separate_folders_give(scenes, tmp_path):
    cfg = dict(kind="group", size=224)
    summary = mine([scenes], tmp_path / "flat", MineConfig(**cfg, group_by=r"^target(\d+)_"),
                   RunOptions(progress=False))
    assert summary["sources"] == 2 and summary["sources_failed"] == 0
    assert len(summary["errors"]) == 1 and "README.png" in summary["errors"][0]["error"]
    for g in ("0", "1"):
        alone = tmp_path / f"alone{g}"
        alone.mkdir()
        for f in sorted(scenes.glob(f"target{g}_*.png")):
            shutil.copy(f, alone / f.name)
        mine([alone], tmp_path / f"out{g}", MineConfig(**cfg), RunOptions(progress=False))
    flat = [json.loads(line) for line in (tmp_path / "flat/index.jsonl").read_text().splitlines()]
    assert flat, "the test needs pairs"
    separate = _pairs(tmp_path / "out0") + _pairs(tmp_path / "out1")
    assert sorted((tuple(r["frames"]), round(r["overlap"], 6)) for r in flat) == sorted(separate)
