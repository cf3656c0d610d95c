"""Frames from a video file every ``interval`` seconds (OpenCV / FFmpeg on CPU).

Frames are chosen by timestamp, not by frame count, so variable-frame-rate files are sampled
evenly in time: frame k is the first decoded frame whose timestamp reaches the next multiple
of ``interval`` (a gap longer than the interval skips the missed multiples). Timestamps come
from the container (CAP_PROP_POS_MSEC); when it gives none (NaN, negative or stuck at 0 past
the first frame) the frame index divided by the nominal fps is used instead. Only chosen
frames are converted to RGB (``grab`` everything, ``retrieve`` the chosen ones).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mimic_fast.io.images import FrameError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)


@dataclass(frozen=True)
class VideoFrame:
    index: int  # decoded frame number, 0-based
    time: float  # seconds
    rgb: np.ndarray  # [h, w, 3] uint8


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def sample_video(path: str | Path, interval: float = 1.0,
                 stats: dict | None = None) -> Iterator[VideoFrame]:
    """Yield the frames of a video at ``interval``-second steps, in order.

    Raises FrameError if the file is missing, empty, cannot be opened as a video, or yields no
    frame at all. A stream that stops early (truncated file) simply ends; ``stats`` (if given)
    receives "decoded" (frames decoded) and "nominal" (the container's frame count, 0 when
    unknown) so the caller can report it.
    """
    import cv2

    if not interval > 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval}")
    path = Path(path)
    if not path.is_file():
        raise FrameError("no such file")
    if path.stat().st_size == 0:
        raise FrameError("empty file")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # keep FFmpeg's chatter off the bar
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise FrameError("cannot open as a video")
        fps = cap.get(cv2.CAP_PROP_FPS)
        fps = fps if math.isfinite(fps) and fps > 0 else None
        nominal = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if stats is not None:
            stats["nominal"] = int(nominal) if math.isfinite(nominal) and nominal > 0 else 0
            stats["decoded"] = 0
        next_t = 0.0
        index = -1
        any_frame = False
        while cap.grab():
            index += 1
            any_frame = True
            if stats is not None:
                stats["decoded"] = index + 1
            t = _timestamp(cap.get(cv2.CAP_PROP_POS_MSEC), index, fps)
            if t + 1e-6 < next_t:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                raise FrameError(f"frame {index} cannot be decoded")
            yield VideoFrame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            next_t = (math.floor(t / interval + 1e-9) + 1) * interval
        if not any_frame:
            raise FrameError("no frame could be decoded")
    finally:
        cap.release()


def _timestamp(msec: float, index: int, fps: float | None) -> float:
    usable = math.isfinite(msec) and msec >= 0 and (msec > 0 or index == 0)
    if usable:
        return msec / 1000.0
    if fps is None:
        raise FrameError("video has neither timestamps nor a frame rate")
    return index / fps
