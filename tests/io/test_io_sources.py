"""Source discovery and CSV pair lists."""

from __future__ import annotations

from pathlib import Path

import pytest

from mimic_fast.io.frames import read_pair_list
from mimic_fast.io.images import FrameError
from mimic_fast.io.sources import Source, discover


def test_auto_discovery_of_the_shared_videos(shared_data):
    sources, errors = discover([shared_data / "video"])
    kinds = {s.path.rsplit("/", 1)[-1]: s.kind for s in sources}
    assert kinds == {"box.mp4": "video", "bikes.mp4": "video", "carphone_pristine.mp4": "video",
                     "tum_freiburg_frames": "frames"}
    assert errors == [] and sources == sorted(sources)
    assert len({s.id for s in sources}) == 4


def test_explicit_kinds_and_missing_input(tmp_path, shared_data):
    tum = shared_data / "video/tum_freiburg_frames"
    sources, errors = discover([tum, tum, tmp_path / "missing"], "group")
    assert sources == [Source(str(tum), "group")]
    assert errors == [{"input": str(tmp_path / "missing"), "error": "no such file or folder"}]
    assert Source(str(tum), "group").id != Source(str(tum), "frames").id
    with pytest.raises(ValueError, match="kind"):
        discover([tum], "movie")


def test_pair_list(tmp_path):
    (tmp_path / "l.csv").write_text("path1,path2\na.jpg,b.jpg\n\n/abs/c.jpg , d.jpg\n")
    rows = read_pair_list(tmp_path / "l.csv")
    assert rows == [(tmp_path / "a.jpg", tmp_path / "b.jpg"),  # paths verbatim, spaces kept
                    (Path("/abs/c.jpg "), tmp_path / " d.jpg")]
    (tmp_path / "bad.csv").write_text("a.jpg\n")
    with pytest.raises(FrameError, match="line 1"):
        read_pair_list(tmp_path / "bad.csv")


def test_a_folder_of_images_is_one_source_not_a_tree(tmp_path):
    scene = tmp_path / "data" / "scene"
    other = tmp_path / "data" / "more" / "s2"
    for folder in (scene / "thumbs", scene / "masks" / "deeper", other):
        folder.mkdir(parents=True)
        (folder / "0.png").write_bytes(b"")
    (scene / "0.png").write_bytes(b"")
    (scene / "clip.mp4").write_bytes(b"")  # beside the images: still a source
    (scene / "masks" / "deeper" / "x.mp4").write_bytes(b"")
    for kind, want in (("auto", "frames"), ("frames", "frames"), ("group", "group")):
        sources, errors = discover([tmp_path / "data"], kind)
        rel = {(str(Path(s.path).relative_to(tmp_path)), s.kind) for s in sources}
        expected = {("data/scene", want), ("data/more/s2", want)}
        if kind == "auto":
            expected.add(("data/scene/clip.mp4", "video"))
        assert rel == expected and errors == []
    videos, _ = discover([tmp_path / "data"], "video")  # image folders mean nothing here
    assert sorted(Path(s.path).name for s in videos) == ["clip.mp4", "x.mp4"]
