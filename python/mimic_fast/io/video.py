"""Frames of a video at the times the published MIMIC scripts sample (OpenCV / FFmpeg on CPU).

The published video script reads ``seconds = int(frame_count // fps)`` frames, one per second,
each by seeking (``CAP_PROP_POS_MSEC = 1000 t + 1``) and reading. With ``interval`` seconds
between samples: times t_k = k * interval for k < int(frame_count // (fps * interval)).

Which frame such a seek returns (measured against OpenCV's seek on constant-rate H.264 at
24, 25, 29.97 and 7.3 fps, B-frames or not): OpenCV numbers frames by their presentation time,
number = floor(pts * fps + 0.5), and the seek lands on the first frame whose number reaches
floor((t + 0.001) * fps + 0.5). For a constant frame rate that is frame round(t * fps), which
can lie up to half a frame BEFORE t (29.97 fps, t = 18 s: frame 539 at 17.985 s). We apply the
same rule to the true presentation times, so variable-frame-rate files get the frame of t's slot
as well (OpenCV's own seek on such files lands a frame or two off in either direction, not
reproducibly; ours is the rule it approximates).

Presentation times come from the container's packet timestamps, sorted (a demux with PyAV: no
decoding, about 3% of the decode time). Not from the decoder: on B-frame files muxed with
pts = dts (``box.mp4``) FFmpeg hands out each frame with its packet's DECODE-order timestamp
(0, 101, 67, 134, 34 ms, ...), although the frames themselves come out in presentation order.
Frames are decoded once, in order (``grab`` everything, ``retrieve`` the chosen ones): the
pixels are exactly those the published seek-and-read gives (tested).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from mimic_fast.io.images import MAX_IMAGE_PIXELS, FrameError

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts"}
)
SEEK_OFFSET = 0.001  # seconds: the published scripts seek to 1000 t + 1 ms


@dataclass(frozen=True)
class VideoFrame:
    index: int  # presentation index, 0-based (the n-th frame shown)
    time: float  # presentation time in seconds, from the first frame
    rgb: np.ndarray  # [h, w, 3] uint8


def is_video_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def sample_plan(times: np.ndarray, fps: float, frame_count: float,
                interval: float = 1.0) -> list[tuple[int, float]]:
    """(presentation index, time) of the published samples, in order.

    times: [F] presentation times (seconds, ascending) of the stream's frames. fps and
    frame_count: the container's, as OpenCV reports them (they set the number of samples).
    A frame chosen for two times (a variable-rate gap, or an interval below one frame) is
    taken once. Times past the last frame have no sample.
    """
    if not interval > 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval}")
    if not (math.isfinite(fps) and fps > 0 and math.isfinite(frame_count) and frame_count > 0):
        raise FrameError("video has no frame rate or frame count: cannot place the sample times")
    times = np.asarray(times, np.float64)
    numbers = np.floor(times * fps + 0.5)  # OpenCV's frame number of each frame
    plan: list[tuple[int, float]] = []
    for k in range(int(frame_count // (fps * interval))):
        target = math.floor((k * interval + SEEK_OFFSET) * fps + 0.5)
        i = int(np.searchsorted(numbers, target, side="left"))
        if i >= len(times):
            break
        if not plan or plan[-1][0] != i:
            plan.append((i, float(times[i])))
    return plan


def presentation_times(path: str | Path) -> np.ndarray:
    """[F] presentation times in seconds, ascending, from the first frame: the video stream's
    packet timestamps, sorted (packets without one are placed by their neighbours' spacing)."""
    try:
        import av
    except ImportError as exc:  # a declared dependency; say so rather than guess times
        raise RuntimeError("reading video timestamps needs PyAV (pip install av)") from exc
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            raw = [p.pts for p in container.demux(stream) if p.size > 0]
            time_base = float(stream.time_base)
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise FrameError(f"cannot read the video's timestamps: {exc}") from None
    known = np.array(sorted(p for p in raw if p is not None), np.float64) * time_base
    if len(known) < len(raw):  # no timestamps (raw streams): evenly spaced by the known ones
        step = float(np.median(np.diff(known))) if len(known) > 1 else 0.0
        if step <= 0:
            return np.zeros(0)
        start = known[0] if len(known) else 0.0
        known = start + step * np.arange(len(raw))
    return known - known[0] if len(known) else known


def sample_video(path: str | Path, interval: float = 1.0, stats: dict | None = None, *,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator[VideoFrame]:
    """Yield the published samples of a video (see the module docstring), in order.

    Raises FrameError if the file is missing, empty, cannot be opened as a video, has frames
    over ``max_pixels`` (the one pixel limit of :mod:`mimic_fast.io.images`), has no frame
    rate or frame count, or yields no frame at all. A stream that stops early
    (truncated file) simply ends; ``stats`` (if given) receives "decoded" (frames decoded)
    and "nominal" (the container's frame count) so the caller can report it.
    """
    import cv2

    if not interval > 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval}")
    path = Path(path)
    if not path.is_file():  # a FIFO or device would block or never end
        raise FrameError("not a regular file" if path.exists() else "no such file")
    if path.stat().st_size == 0:
        raise FrameError("empty file")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # keep FFmpeg's chatter off the bar
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise FrameError("cannot open as a video")
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if w * h > max_pixels:  # from the container, before any frame is decoded
            raise FrameError(f"video frames too large: {w:g}x{h:g} = {w * h:g} pixels, over "
                             f"the limit of {max_pixels}")
        fps, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
        if stats is not None:
            stats["nominal"] = int(count) if math.isfinite(count) and count > 0 else 0
            stats["decoded"] = 0
        plan = sample_plan(presentation_times(path), fps, count, interval)
        if not plan:
            raise FrameError(f"shorter than one sample interval ({count:g} frames at "
                             f"{fps:g} fps, interval {interval:g} s)")
        index = -1
        for want, t in plan:
            while index < want:
                if not cap.grab():
                    if index < 0:
                        raise FrameError("no frame could be decoded")
                    return
                index += 1
                if stats is not None:
                    stats["decoded"] = index + 1
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                raise FrameError(f"frame {index} cannot be decoded")
            if bgr.shape[0] * bgr.shape[1] > max_pixels:  # a container that gave no size
                raise FrameError(f"video frames too large: {bgr.shape[1]}x{bgr.shape[0]}")
            yield VideoFrame(index, t, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if stats is not None:  # count the rest, for the truncation check
            while cap.grab():
                index += 1
            stats["decoded"] = index + 1
    finally:
        cap.release()
