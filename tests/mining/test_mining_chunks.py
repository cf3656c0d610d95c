"""Work units smaller than a source: a long video or frame folder split into chunks gives the
unsplit dataset byte for byte (shards, index, summary, manifests), whatever the chunk size
and the number of workers; a killed run reuses the parts that landed; anything irregular in a
chunk makes the source be mined whole; progress counts candidates."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from mimic_fast.mining import chunks, run, samplers, synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine
from mimic_fast.mining.worker import SourceTask

from test_mining_resume import Crash, dataset_files  # noqa: E402  (tests/mining on sys.path)


def options(chunk: int, workers: int = 1) -> RunOptions:
    return RunOptions(progress=False, chunk=chunk, workers=workers)


@pytest.fixture
def mined_whole(monkeypatch) -> list:
    """Paths of the split sources the run fell back to mining whole (the safety net must not
    be what makes a regular source come out right)."""
    paths = []
    real = run._Work._mine_whole

    def record(self, index, why):
        paths.append(self.sources[index].source.path)
        real(self, index, why)

    monkeypatch.setattr(run._Work, "_mine_whole", record)
    return paths


def everything(out) -> dict[str, bytes]:
    """dataset_files plus the manifests (their timing aside)."""
    files = dataset_files(out)
    for p in sorted((out / "_done").glob("*.json")):
        m = json.loads(p.read_text())
        m.pop("seconds")
        files[p.name] = json.dumps(m, sort_keys=True).encode()
    return files


def write_h264(frames, path, fps: int, gop: int) -> None:
    """H.264 with B-frames and a keyframe every ``gop`` frames (so chunks start by seeking)."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"bf": "2", "g": str(gop), "keyint_min": str(gop), "crf": "14"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A frame folder and an H.264 video (sampled every other frame) of camera paths whose
    walk takes (i, i+2) and skips."""
    root = tmp_path_factory.mktemp("long")
    frames, _ = synthetic.camera_path(synthetic.photo("astronaut"), 14, (240, 320), seed=3)
    synthetic.write_frames(frames, root / "folder")
    frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 28, (240, 320), seed=5)
    write_h264(frames, root / "clip.mp4", fps=4, gop=5)
    return root


@pytest.fixture(scope="module")
def unsplit(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("unsplit") / "ds"
    s = mine([inputs], out, MineConfig(interval=0.5), options(0))
    assert s["sources"] == 2 and s["accepted"] > 0 and s["rejected"].get("high_overlap", 0) > 0
    assert s["candidates"] > s["frames"] - 2  # (i, i+2) pairs were formed
    return everything(out)


class Recorder(run.Progress):
    instances: list = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.steps: list[int] = []
        Recorder.instances.append(self)

    def advance(self, n):
        self.steps.append(n)
        super().advance(n)


@pytest.mark.parametrize("chunk", [1, 4])
def test_any_chunk_size_gives_the_unsplit_dataset(inputs, unsplit, tmp_path, monkeypatch, chunk,
                                                  mined_whole):
    ran = []
    real = chunks.run_chunk
    monkeypatch.setattr(chunks, "run_chunk", lambda t, p=None: ran.append(t) or real(t, p))
    mine([inputs], tmp_path / "ds", MineConfig(interval=0.5), options(chunk))
    assert everything(tmp_path / "ds") == unsplit
    assert {t.source.kind for t in ran} == {"frames", "video"}  # both were split...
    assert any(t.span is not None and t.span.keyframe > 0 for t in ran)  # ...videos by seeking
    assert not (tmp_path / "ds" / chunks.PARTS_DIR).exists() and mined_whole == []


def test_two_workers_share_one_source(inputs, unsplit, tmp_path, monkeypatch, mined_whole):
    monkeypatch.setattr(run, "Progress", Recorder)
    mine([inputs], tmp_path / "ds", MineConfig(interval=0.5), options(3, workers=2))
    assert everything(tmp_path / "ds") == unsplit and mined_whole == []
    bar = Recorder.instances.pop()  # the pool counts each chunk as it lands
    assert bar.total == bar.done == 26 and sorted(bar.steps) == [2] * 10 + [3] * 2


def test_killed_run_reuses_landed_parts(inputs, unsplit, tmp_path, monkeypatch, mined_whole):
    out = tmp_path / "ds"
    real = chunks.run_chunk
    ran = []

    def crash_on_fourth(task, progress=None):
        if len(ran) == 3:
            raise Crash("killed")
        ran.append((task.index, task.number))
        return real(task, progress)

    monkeypatch.setattr(chunks, "run_chunk", crash_on_fourth)
    with pytest.raises(Crash):
        mine([inputs], out, MineConfig(interval=0.5), options(4))
    landed = sorted(p.name for p in (out / chunks.PARTS_DIR).rglob("*.json"))
    assert len(landed) == 3
    # a part damaged since it landed is done again, not trusted
    damaged = next((out / chunks.PARTS_DIR).rglob("chunk-000001.bin"))
    damaged.write_bytes(damaged.read_bytes()[:-1])

    ran.clear()
    monkeypatch.setattr(chunks, "run_chunk", lambda t, p=None: ran.append((t.index, t.number))
                        or real(t, p))
    mine([inputs], out, MineConfig(interval=0.5), options(4))
    assert everything(out) == unsplit and mined_whole == []
    assert len(ran) == len(set(ran)) and (0, 0) not in ran and (0, 1) in ran


def test_irregular_chunk_mines_the_source_whole(inputs, tmp_path, shared_data, mined_whole):
    """A bad frame inside a chunk, and box.mp4 (frames with decode-order timestamps): the
    source is mined whole, so the errors and pairs are the unsplit ones."""
    folder = tmp_path / "folder"
    folder.mkdir()
    for p in sorted((inputs / "folder").iterdir()):
        (folder / p.name).write_bytes(p.read_bytes())
    sorted(folder.iterdir())[7].write_bytes(b"not a picture")
    box = shared_data / "video/opencv_box/box.mp4"
    cfg = MineConfig(interval=2.0)
    a = mine([folder, box], tmp_path / "a", cfg, options(0))
    b = mine([folder, box], tmp_path / "b", cfg, options(2))
    assert a["errors"] and everything(tmp_path / "a") == everything(tmp_path / "b")
    assert sorted(mined_whole) == sorted([str(folder), str(box)])
    task = SourceTask(str(tmp_path / "c"), 0, run.discover([box])[0][0], cfg)
    first = chunks.plan_source(task, 2).chunks[0]
    assert chunks.run_chunk(first)["status"] == "whole"


@pytest.mark.parametrize("chunk", [0, 3])
def test_progress_counts_candidates(inputs, tmp_path, monkeypatch, chunk):
    """One bar over the candidates (i, i+1) of both ordered sources: it moves many times
    within a source and ends at its total."""
    monkeypatch.setattr(run, "Progress", Recorder)
    mine([inputs], tmp_path / "ds", MineConfig(interval=0.5), options(chunk))
    bar = Recorder.instances.pop()
    assert bar.total == 13 + 13 and bar.done == bar.total and bar.sources_done == 2
    assert len([n for n in bar.steps if n > 0]) >= (4 if chunk else 2)
    assert max(bar.steps) <= (3 if chunk else samplers.CHUNK)


def test_group_progress_moves_within_the_group(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(run, "Progress", Recorder)
    monkeypatch.setattr(samplers, "GROUP_BATCH", 10)
    mine([inputs / "folder"], tmp_path / "ds", MineConfig(kind="group"), options(0))
    bar = Recorder.instances.pop()
    assert bar.total == 14 * 13 // 2 == bar.done
    assert bar.steps[:9] == [10] * 9 and sum(bar.steps) == 91


def test_ray_runs_the_source_a_dead_chunk_asks_for(tmp_path, monkeypatch):
    """A chunk whose Ray task died turns into its source, mined whole as a new task."""
    exceptions = pytest.importorskip("ray.exceptions")
    from mimic_fast.io.sources import Source
    from mimic_fast.mining.engines import run_ray
    from test_mining_engines import _with_fake_ray

    def get(task):
        if isinstance(task, chunks.ChunkTask):
            raise exceptions.WorkerCrashedError("simulated")
        return {"index": task.index, "status": "done"}

    _with_fake_ray(monkeypatch, exceptions, get, tmp_path)
    source = Source(str(tmp_path / "v.mp4"), "video")
    whole = SourceTask(str(tmp_path), 5, source, MineConfig())
    chunk = chunks.ChunkTask(str(tmp_path), 5, source, MineConfig(), 0, 0, 3, 10)
    landed = []

    def on_done(result):
        landed.append((result["index"], result["status"]))
        return [whole] if result["status"] == "whole" else []

    run_ray([chunk], None, on_done)
    assert landed == [(5, "whole"), (5, "done")]


def test_parts_missing_a_needed_verdict_do_not_assemble(tmp_path):
    """(0, 1) overlaps too much, so the walk needs (0, 2): parts without it are refused (the
    driver then mines the source whole), never assembled into a shorter shard."""
    from mimic_fast.io.sources import Source

    task = SourceTask(str(tmp_path), 0, Source(str(tmp_path / "f"), "frames"), MineConfig())
    verdicts = [{"i": 0, "j": 1, "reason": "high_overlap", "overlap": 0.9, "frames": [0, 1]},
                {"i": 1, "j": 2, "reason": "low_overlap", "overlap": 0.1, "frames": [1, 2]}]
    part = {"chunk": 0, "start": 0, "stop": 2, "seconds": 0.0, "verdicts": verdicts}
    with pytest.raises(ValueError, match=r"\(0, 2\)"):
        chunks.assemble(task, [part])
    with pytest.raises(ValueError, match="stop at position 1"):
        chunks.assemble(task, [dict(part, verdicts=verdicts[:1] + [
            {"i": 0, "j": 2, "reason": "low_overlap", "overlap": 0.1, "frames": [0, 2]}],
            stop=3)])
    assert not list(tmp_path.glob("*.tar")) and not (tmp_path / "_done").exists()


@pytest.mark.parametrize("positions,chunk,workers",
                         [(599, 64, 1), (599, 64, 2), (599, 64, 4), (10, 3, 2), (5, 1, 2),
                          (3, 1, 4), (130, 64, 2), (65, 64, 3)])
def test_chunk_bounds_cover_every_position_in_chunks_largest_first(positions, chunk, workers):
    bounds = chunks.chunk_bounds(positions, chunk, workers)
    sizes = [b - a for a, b in zip(bounds, bounds[1:])]
    assert bounds[0] == 0 and bounds[-1] == positions
    assert all(0 < s <= chunk for s in sizes) and sizes == sorted(sizes, reverse=True)


def test_several_workers_end_a_long_source_on_half_chunks():
    def sizes(workers):
        bounds = chunks.chunk_bounds(599, 64, workers)
        return [b - a for a, b in zip(bounds, bounds[1:])]

    assert sizes(1) == [60] * 9 + [59]
    assert sizes(2) == [60] * 8 + [30, 30, 30, 29]  # the tail: half a chunk


def test_a_long_source_goes_out_in_chunk_order(tmp_path):
    """Its first chunk used to be one position shorter, so largest-first sent it out LAST,
    and the source could not be assembled before the run's very end."""
    from mimic_fast.io.sources import Source
    from mimic_fast.mining.schedule import largest_first

    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0" * 1000)
    source = Source(str(video), "video")
    bounds = chunks.chunk_bounds(599, 64, 2)
    units = [chunks.ChunkTask(str(tmp_path), 0, source, MineConfig(), k, a, b, 600)
             for k, (a, b) in enumerate(zip(bounds, bounds[1:]))]
    assert [u.number for u in largest_first(units)] == list(range(len(units)))
