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

A part of the samples (a chunk of a long video, for parallel workers) is decoded with PyAV
from the keyframe before it (:func:`decode_span`). Frames are identified by their timestamps,
never by counting after a seek: every decoded frame must carry the packet timestamp of the
presentation index it stands for, else :class:`NotSeekable` is raised and the caller decodes
the whole video instead (files like ``box.mp4``, whose frames carry decode-order timestamps,
always go that way). PyAV converts with the same swscale call OpenCV makes (yuv420p to BGR24,
no scaling): bit-identical pixels on the shared videos and the H.264 B-frame and MPEG-4 test
videos (tested); other codecs and pixel formats are not split (not verified).
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


# What a seek-and-decode is verified on (tests/io/test_io_video_spans.py): codecs whose
# decoders give the same pixels in OpenCV's FFmpeg and PyAV's (H.264 is bit-exact by its
# standard; MPEG-4 part 2 leaves the IDCT to the decoder, checked on textured frames here), and
# the pixel format whose conversion to BGR24 is the same in both.
SPLITTABLE_CODECS = frozenset({"h264", "mpeg4"})
SPLITTABLE_PIXEL_FORMATS = frozenset({"yuv420p"})


class NotSeekable(Exception):
    """Frames decoded after a seek are not where the timestamps say (or the stream is not of a
    kind whose seek is verified): decode the whole video in order instead."""


@dataclass(frozen=True)
class Demux:
    """What one demux of the video stream (no decoding) tells."""
    times: np.ndarray  # [F] presentation times, seconds from the first frame, ascending
    pts: np.ndarray  # [F] int64 packet timestamps (stream time base), sorted: pts[n] is the
    # n-th frame shown; empty when some packet has none
    keyframes: np.ndarray  # [K] presentation indices of the keyframe packets, ascending
    codec: str
    pixel_format: str | None

    @property
    def seekable(self) -> bool:
        """Every frame identifiable by a unique timestamp; a verified codec and conversion."""
        return (len(self.pts) == len(self.times) > 0 and len(self.keyframes) > 0
                and bool(np.all(np.diff(self.pts) > 0)) and self.codec in SPLITTABLE_CODECS
                and self.pixel_format in SPLITTABLE_PIXEL_FORMATS)


def demux(path: str | Path) -> Demux:
    """The stream's packet timestamps and keyframes (a demux with PyAV: no decoding, about 3%
    of the decode time). Packets without a timestamp (raw streams) are placed evenly by the
    known ones' spacing."""
    try:
        import av
    except ImportError as exc:  # a declared dependency; say so rather than guess times
        raise RuntimeError("reading video timestamps needs PyAV (pip install av)") from exc
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            packets = [(p.pts, p.is_keyframe) for p in container.demux(stream) if p.size > 0]
            time_base = float(stream.time_base)
            fmt = stream.codec_context.format
            pixel_format = fmt.name if fmt is not None else None
            codec = stream.codec_context.name
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise FrameError(f"cannot read the video's timestamps: {exc}") from None
    pts = np.array(sorted(p for p, _ in packets if p is not None), np.int64)
    keys = np.unique(np.searchsorted(pts, [p for p, k in packets if k and p is not None]))
    known = pts.astype(np.float64) * time_base
    if len(known) < len(packets):  # no timestamps (raw streams): evenly spaced by the known ones
        pts, keys = np.zeros(0, np.int64), np.zeros(0, np.int64)
        step = float(np.median(np.diff(known))) if len(known) > 1 else 0.0
        if step <= 0:
            return Demux(np.zeros(0), pts, keys, codec, pixel_format)
        start = known[0] if len(known) else 0.0
        known = start + step * np.arange(len(packets))
    return Demux(known - known[0] if len(known) else known, pts, keys, codec, pixel_format)


def presentation_times(path: str | Path) -> np.ndarray:
    """[F] presentation times in seconds, ascending, from the first frame: the video stream's
    packet timestamps, sorted (see :func:`demux`)."""
    return demux(path).times


def truncated(decoded: int, nominal: int) -> bool:
    """A stream that ends well before the container's nominal frame count."""
    return bool(nominal) and decoded < 0.9 * nominal - 2


def _open_capture(path: Path, max_pixels: int):
    """(an opened cv2.VideoCapture, fps, frame count), after the checks of
    :func:`sample_video`."""
    import cv2

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
    except BaseException:
        cap.release()
        raise
    return cap, cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)


def _plan(times: np.ndarray, fps: float, count: float,
          interval: float) -> list[tuple[int, float]]:
    plan = sample_plan(times, fps, count, interval)
    if not plan:
        raise FrameError(f"shorter than one sample interval ({count:g} frames at "
                         f"{fps:g} fps, interval {interval:g} s)")
    return plan


def _nominal(count: float) -> int:
    return int(count) if math.isfinite(count) and count > 0 else 0


@dataclass(frozen=True)
class VideoSpan:
    """Some consecutive samples of a video, and what decoding them by seeking needs."""
    path: str
    samples: tuple[tuple[int, float], ...]  # (presentation index, time), ascending
    keyframe: int  # presentation index of the keyframe the decode starts from
    pts: np.ndarray  # timestamps of frames keyframe, keyframe + 1, ... through the last
    # sample, or through the stream's end when to_end
    to_end: bool  # decode the rest too: the stream must hold every frame the demux found


@dataclass(frozen=True)
class VideoPlan:
    """A video's published samples (those :func:`sample_video` yields) and its demux."""
    path: str
    samples: list[tuple[int, float]]
    demux: Demux
    nominal: int  # the container's frame count (0: unknown)

    @property
    def splittable(self) -> bool:
        """Parts of it can be decoded by :func:`decode_span` (else: whole, in order)."""
        return self.demux.seekable and not truncated(len(self.demux.pts), self.nominal)

    def span(self, first: int, stop: int) -> VideoSpan:
        """samples[first:stop], decoded from the last keyframe at or before the first."""
        wanted = self.samples[first:stop]
        keys = self.demux.keyframes
        k = int(np.searchsorted(keys, wanted[0][0], side="right")) - 1
        start = int(keys[k]) if k >= 0 else 0
        to_end = stop >= len(self.samples)
        end = len(self.demux.pts) if to_end else wanted[-1][0] + 1
        return VideoSpan(self.path, tuple(wanted), start, self.demux.pts[start:end].copy(),
                         to_end)


def plan_video(path: str | Path, interval: float = 1.0, *,
               max_pixels: int = MAX_IMAGE_PIXELS) -> VideoPlan:
    """The samples of :func:`sample_video` without decoding (same checks, same errors)."""
    if not interval > 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval}")
    path = Path(path)
    cap, fps, count = _open_capture(path, max_pixels)
    cap.release()
    d = demux(path)
    return VideoPlan(str(path), _plan(d.times, fps, count, interval), d, _nominal(count))


def decode_span(span: VideoSpan) -> Iterator[VideoFrame]:
    """The span's samples, decoded with PyAV from its keyframe; the same frames and pixels as
    :func:`sample_video` gives for them, or :class:`NotSeekable` (see the module docstring)."""
    import av
    import cv2

    try:
        with av.open(span.path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1  # one core per worker
            if span.keyframe > 0:
                container.seek(int(span.pts[0]), stream=stream, backward=True, any_frame=False)
            wanted = iter(span.samples)
            want = next(wanted, None)
            n = 0  # frames identified so far: the next one must be frame keyframe + n
            for frame in container.decode(stream):
                if n == 0 and frame.pts is not None and frame.pts < span.pts[0]:
                    continue  # before the keyframe: a seek that landed early, a leading picture
                if n >= len(span.pts) or frame.pts != span.pts[n]:
                    raise NotSeekable(f"frame {span.keyframe + n} has timestamp {frame.pts}, "
                                      "not the demuxed one")
                if frame.format.name not in SPLITTABLE_PIXEL_FORMATS:
                    raise NotSeekable(f"pixel format {frame.format.name}")
                index = span.keyframe + n
                n += 1
                if want is not None and index == want[0]:
                    bgr = frame.to_ndarray(format="bgr24")
                    yield VideoFrame(index, want[1], cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
                    want = next(wanted, None)
                if want is None and not span.to_end:
                    return
            if want is not None or n != len(span.pts):
                raise NotSeekable(f"the stream ended after frame {span.keyframe + n - 1}")
    except av.error.FFmpegError as exc:
        raise NotSeekable(f"decoding failed: {exc}") from None


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
    cap, fps, count = _open_capture(path, max_pixels)
    try:
        if stats is not None:
            stats["nominal"] = _nominal(count)
            stats["decoded"] = 0
        plan = _plan(presentation_times(path), fps, count, interval)
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
