"""Test videos OpenCV's writer cannot make (variable frame rate, H.264 with B-frames; written
with PyAV), and the published script's way of reading a video's samples."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np


def write_vfr_video(path, frames, times) -> None:
    """An MPEG-4 file with RGB uint8 ``frames`` shown at ``times`` (seconds, increasing)."""
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


def write_h264_video(path, n_frames: int, rate, size=(64, 96), b_frames: int = 3) -> None:
    """An H.264 file (libx264 through PyAV) of ``n_frames`` distinct frames at ``rate`` fps
    (a Fraction for NTSC rates), with ``b_frames`` B-frames between references."""
    h, w = size
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"bf": str(b_frames), "g": "48", "crf": "12"}
        for k in range(n_frames):
            rgb = np.full((h, w, 3), (k * 37) % 256, np.uint8)
            rgb[: h // 8] = rng.integers(0, 256, (h // 8, w, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def published_seek_frames(path) -> list:
    """The RGB frames the published MIMIC video script reads: for t = 0 .. int(frame_count //
    fps) - 1, a seek to 1000 t + 1 ms and a read (a fresh capture each time, so no seek
    depends on the one before)."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    seconds = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) // cap.get(cv2.CAP_PROP_FPS))
    cap.release()
    frames = []
    for t in range(seconds):
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        cap.set(cv2.CAP_PROP_POS_MSEC, 1000 * t + 1)
        ok, bgr = cap.read()
        cap.release()
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None)
    return frames
