"""Crash and resume: a run killed after some sources, then rerun, ends with exactly the
dataset of an uninterrupted run; finished sources are skipped; settings must match."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from mimic_fast.io.sources import Source
from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import DatasetMismatch, mine
from mimic_fast.mining.worker import SourceTask, failed_manifest

QUIET = RunOptions(progress=False)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sources")
    for k, name in enumerate(("astronaut", "coffee", "chelsea", "rocket")):
        frames, _ = synthetic.camera_path(synthetic.photo(name), 8, (240, 320), seed=k)
        synthetic.write_frames(frames, root / f"scene{k}")
    return root


def dataset_files(out) -> dict[str, bytes]:
    """Everything a reader uses: shards and index (summary minus timing)."""
    files = {p.name: p.read_bytes() for p in sorted(out.glob("pairs-*.tar"))}
    files["index.jsonl"] = (out / "index.jsonl").read_bytes()
    summary = json.loads((out / "summary.json").read_text())
    for k in ("seconds", "candidates_per_second", "sources_skipped", "engine", "workers"):
        summary.pop(k)
    files["summary"] = json.dumps(summary, sort_keys=True).encode()
    return files


class Crash(RuntimeError):
    pass


def crash_after(n):
    seen = []

    def hook(manifest):
        seen.append(manifest["index"])
        if len(seen) >= n:
            raise Crash(f"simulated crash after {seen}")

    return hook


def test_killed_run_resumes_to_the_uninterrupted_dataset(inputs, tmp_path):
    ref = mine([inputs], tmp_path / "ref", MineConfig(), QUIET)
    assert ref["sources"] == 4 and ref["accepted"] > 0

    out = tmp_path / "crashed"
    with pytest.raises(Crash):
        mine([inputs], out, MineConfig(), QUIET, on_source_done=crash_after(2))
    assert len(list((out / "_done").glob("*.json"))) == 2
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (out / f".pairs-000003.tar.tmp-{dead}-0123abcd").write_bytes(b"half a shard")  # killed

    redone = []
    resumed = mine([inputs], out, MineConfig(), QUIET,
                   on_source_done=lambda m: redone.append(m["index"]))
    assert sorted(redone) == [2, 3] and resumed["sources_skipped"] == 2
    assert not list(out.glob(".*tmp*"))
    assert dataset_files(out) == dataset_files(tmp_path / "ref")

    again = mine([inputs], out, MineConfig(), QUIET)  # nothing left to do
    assert again["sources_skipped"] == 4 and dataset_files(out) == dataset_files(tmp_path / "ref")


def test_lost_shard_is_redone(inputs, tmp_path):
    out = tmp_path / "ds"
    first = mine([inputs], out, MineConfig(), QUIET)
    lost = out / first["shards"][0]
    reference = lost.read_bytes()
    lost.unlink()
    second = mine([inputs], out, MineConfig(), QUIET)
    assert second["sources_skipped"] == 3 and lost.read_bytes() == reference


def test_rerun_with_other_settings_or_inputs_is_refused(inputs, tmp_path):
    out = tmp_path / "ds"
    mine([inputs / "scene0"], out, MineConfig(), QUIET)
    with pytest.raises(DatasetMismatch, match="mining"):
        mine([inputs / "scene0"], out, MineConfig(high=0.8), QUIET)
    with pytest.raises(DatasetMismatch, match="sources"):
        mine([inputs], out, MineConfig(), QUIET)
    # run options may change between a run and its resumption
    mine([inputs / "scene0"], out, MineConfig(), RunOptions(progress=False, workers=2))


def test_seed_changes_only_what_it_should(inputs, tmp_path):
    a = mine([inputs / "scene1"], tmp_path / "a", MineConfig(seed=0), QUIET)
    b = mine([inputs / "scene1"], tmp_path / "b", MineConfig(seed=0), QUIET)
    assert dataset_files(tmp_path / "a") == dataset_files(tmp_path / "b")
    assert a["accepted"] == b["accepted"]


def test_source_failing_on_rerun_leaves_no_stale_shard(inputs, tmp_path):
    """Killed between a shard's rename and its manifest, then the source fails on the rerun:
    its old shard must go (readers take every pairs-*.tar in the folder)."""
    scene = tmp_path / "scene"
    shutil.copytree(inputs / "scene0", scene)
    out = tmp_path / "ds"
    first = mine([scene], out, MineConfig(), QUIET)
    assert first["shards"] == ["pairs-000000.tar"]
    (out / "_done" / "source-000000.json").unlink()  # the kill
    for image in scene.iterdir():
        image.write_bytes(b"no longer an image")
    second = mine([scene], out, MineConfig(), QUIET)
    assert second["sources_failed"] == 1 and second["shards"] == []
    assert not list(out.glob("*.tar")) and (out / "index.jsonl").read_text() == ""


def test_dead_worker_manifest_removes_stale_shard(tmp_path):
    """The driver's manifest for a source whose worker died says "no shard": so it is."""
    (tmp_path / "pairs-000003.tar").write_bytes(b"from a killed run")
    task = SourceTask(str(tmp_path), 3, Source(str(tmp_path / "v.mp4"), "video"), MineConfig())
    assert failed_manifest(task, "worker process died")["shard"] is None
    assert not (tmp_path / "pairs-000003.tar").exists()
