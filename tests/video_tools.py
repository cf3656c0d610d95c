"""Writing test videos OpenCV's writer cannot: variable frame rate (PyAV)."""

from __future__ import annotations

from fractions import Fraction

import pytest


def write_vfr_video(path, frames, times) -> None:
    """An MPEG-4 file with RGB uint8 ``frames`` shown at ``times`` (seconds, increasing)."""
    av = pytest.importorskip("av")
    ms = Fraction(1, 1000)
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.time_base = ms
        stream.codec_context.bit_rate = 4_000_000  # sharp enough for SIFT
        for rgb, t in zip(frames, times):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = round(t * 1000), ms
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
