"""Decoding mining frames with NVIDIA DALI: image files in batches, video frames at given positions.

The optional twin of :func:`mimic_fast.io.images.read_image` and
:func:`mimic_fast.io.video.sample_video` (``mine --decoder dali``). One graph serves both
devices: ``device="cpu"`` decodes on CPU threads (libjpeg-turbo, libpng, FFmpeg: runs without a
GPU, so the tests exercise it), ``device="gpu"`` puts the decoder on the GPU (DALI's "mixed"
backend: nvJPEG for images, NVDEC for video; its frames are copied back to the host, since SIFT
runs there). H.264/H.265/AV1/MPEG-4 video decode needs the GPU (NVDEC); on CPU DALI decodes
only MJPEG, VP8 and VP9.

The same rules as the OpenCV path, checked in Python before DALI sees a byte:

- only regular files are read; empty, truncated (JPEG without an end marker after its first
  scan, PNG without IEND), too small (shorter side below ``min_side``) and too large files
  (over :data:`~mimic_fast.io.images.MAX_IMAGE_PIXELS` by the header, whatever the extension
  claims) are refused, each with a one-line :class:`~mimic_fast.io.images.FrameError`;
- a file DALI cannot decode (e.g. a Radiance HDR: OpenCV reads it, DALI does not) fails its
  whole batch inside DALI, so the batch is decoded again file by file on a fresh pipeline and
  the culprit gets a FrameError; the others are unaffected;
- video: frames over the pixel limit are refused from the container's size; the frames asked
  for must exist, by the stream's demuxed packets (DALI itself fails at nothing there: past
  the end it pads with a constant frame, and for a file cut short whose header still
  announces every frame it returns black ones); padding is also made an impossible colour
  and caught.

Measured on this project's CPU machines (DALI 2.4.0, CPU backend): JPEG, PNG, BMP, PNM, TIFF,
WebP, grey, 16-bit, RGBA and EXIF-rotated images decode bit-identical to ``cv2.imread``
(CMYK JPEG: off by 1 grey level); MJPEG video frames differ from OpenCV/FFmpeg's by the YUV to
RGB conversion (real frames: mean 1.4 grey levels, 99th percentile 12, max 74 at sharp colour
edges; the nearest other frame is 14.5 away on average). The GPU backend (nvJPEG,
NVDEC) has never run: its differences are not measured.

Differences from the OpenCV path, by design: a JPEG is always decoded in full (no 1/2..1/8
reduced decode); a video that DALI cannot open or index (e.g. one cut mid-stream) fails as a
whole, where OpenCV keeps the frames before the cut (an MJPEG .avi cut in half still decodes
up to the cut).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from mimic_fast.io.images import (
    MAX_IMAGE_PIXELS, DecodedImage, FrameError, read_checked_bytes, read_regular_file,
)

DEVICES = ("cpu", "gpu")
CPU_VIDEO_CODECS = frozenset({"mjpeg", "vp8", "vp9"})  # the rest need NVDEC ("gpu")
# What DALI fills frames past a video's end with: no real frame is this one colour throughout.
_PAD_RGB = (1, 2, 3)


VIDEO_GROUP = 32  # video samples per DALI run (bounds the frames held at full resolution)


class DaliUnavailable(RuntimeError):
    """DALI was asked for but cannot run here."""


class _DaliRunFailed(FrameError):
    """DALI itself failed on a video (rather than a check before it)."""


def dali_missing(need_gpu: bool) -> str | None:
    """Why DALI cannot run in this process (None when it can). ``need_gpu``: the GPU backend
    is wanted, which needs a CUDA device."""
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return ("nvidia.dali is not installed (pip install 'mimic-fast[dali]', i.e. "
                "nvidia-dali-cuda130)")
    if need_gpu:
        from nvidia.dali.backend import GetCUDADeviceCount

        if GetCUDADeviceCount() < 1:
            return "no CUDA device"
    return None


def _graph_devices(device: str, device_id: int | None) -> tuple[str, int | None]:
    """(DALI decoder backend, pipeline device_id) for ``device``; DaliUnavailable when not here."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    why = dali_missing(need_gpu=device == "gpu")
    if why:
        raise DaliUnavailable(f"DALI decoding on {device} cannot run: {why}")
    if device == "gpu":
        return "mixed", 0 if device_id is None else device_id
    return "cpu", None


def _host(batch) -> list[np.ndarray]:
    """A DALI TensorList (CPU or GPU) as host numpy arrays, one per sample."""
    if hasattr(batch, "as_cpu"):
        batch = batch.as_cpu()
    return [np.array(batch[k]) for k in range(len(batch))]


def _first_line(exc: BaseException) -> str:
    """What a DALI error says went wrong, in one line (its message is a page long: the operator,
    the graph's source line, then the cause after "encountered:")."""
    text = str(exc)
    cause = text.split("encountered:", 1)[-1].split("Current pipeline object", 1)[0]
    cause = cause.split("C++ context", 1)[0]
    cause = re.sub(r"\s*sample #\d+\s*", " ", " ".join(cause.split())).strip(" :")
    return cause[:200] or type(exc).__name__


# --- images --------------------------------------------------------------------------------------
class DaliImageDecoder:
    """Image files -> RGB uint8 arrays, ``batch_size`` files per DALI run, on one pipeline.

    :meth:`decode` returns, for each path in order, a :class:`DecodedImage` or the
    :class:`FrameError` that :func:`mimic_fast.io.images.read_image` would raise for it (the
    caller records ``str(error)``; nothing is raised for a bad file)."""

    def __init__(self, device: str = "cpu", device_id: int | None = None, batch_size: int = 16,
                 num_threads: int = 2, min_side: int = 32, max_pixels: int = MAX_IMAGE_PIXELS):
        self.backend, self.device_id = _graph_devices(device, device_id)
        self.batch_size, self.num_threads = int(batch_size), int(num_threads)
        self.min_side, self.max_pixels = min_side, max_pixels
        self._pipe = self._build()

    def _build(self):
        from nvidia.dali import fn, pipeline_def, types

        @pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads,
                      device_id=self.device_id, prefetch_queue_depth=1, exec_dynamic=True)
        def graph():
            encoded = fn.external_source(name="encoded", batch=True, dtype=types.UINT8)
            return fn.decoders.image(encoded, device=self.backend, output_type=types.RGB)

        pipe = graph()
        pipe.build()
        return pipe

    def decode(self, paths: Sequence[str | Path]) -> list[DecodedImage | FrameError]:
        return [r for _, r in self.iter_decode(paths)]

    def iter_decode(self, paths: Iterable[str | Path]
                    ) -> Iterator[tuple[str, DecodedImage | FrameError]]:
        """(path, result) in input order, decoding ``batch_size`` files at a time."""
        chunk: list[str] = []
        for p in paths:
            chunk.append(str(p))
            if len(chunk) == self.batch_size:
                yield from zip(chunk, self._decode_batch(chunk))
                chunk = []
        if chunk:
            yield from zip(chunk, self._decode_batch(chunk))

    def _decode_batch(self, paths: list[str]) -> list[DecodedImage | FrameError]:
        out: list[DecodedImage | FrameError] = []
        todo: list[tuple[int, bytes]] = []  # (position in out, encoded bytes) passing the checks
        for p in paths:
            try:
                todo.append((len(out), self._checked_bytes(p)))
                out.append(None)  # type: ignore[arg-type]  # filled below
            except FrameError as exc:
                out.append(exc)
        if not todo:
            return out
        try:
            images = self._run([data for _, data in todo])
        except RuntimeError:  # one undecodable file fails the batch: find it, file by file
            images = []
            for _, data in todo:
                self._pipe = self._build()  # a pipeline is not reused after an error
                try:
                    images.extend(self._run([data]))
                except RuntimeError as exc:
                    images.append(FrameError(f"cannot decode image with DALI: {_first_line(exc)}"))
            self._pipe = self._build()
        for (k, _), img in zip(todo, images):
            out[k] = img if isinstance(img, FrameError) else self._checked_image(img)
        return out

    def _run(self, encoded: list[bytes]) -> list[np.ndarray]:
        self._pipe.feed_input("encoded", [np.frombuffer(d, np.uint8) for d in encoded])
        (decoded,) = self._pipe.run()
        return _host(decoded)

    def _checked_bytes(self, path: str) -> bytes:
        """The file's bytes if read_image's checks pass (see the module docstring)."""
        return read_checked_bytes(path, self.min_side, self.max_pixels)[0]

    def _checked_image(self, rgb: np.ndarray) -> DecodedImage | FrameError:
        h, w = rgb.shape[:2]
        if rgb.ndim != 3 or rgb.shape[2] != 3 or min(h, w) < self.min_side:
            return FrameError(f"image too small: {w}x{h} (shorter side < {self.min_side})")
        return DecodedImage(rgb, (int(h), int(w)))


def dali_read_images(paths: Sequence[str | Path], device: str = "cpu", **options
                     ) -> list[DecodedImage | FrameError]:
    """One-off :meth:`DaliImageDecoder.decode` (building the pipeline costs ~10 ms: keep a
    :class:`DaliImageDecoder` for many batches)."""
    return DaliImageDecoder(device, **options).decode(paths)


# --- video ---------------------------------------------------------------------------------------
def decode_video_frames(path: str | Path, indices: Sequence[int], device: str = "cpu",
                        device_id: int | None = None, *, max_pixels: int = MAX_IMAGE_PIXELS,
                        num_threads: int = 2, stream_frames: int | None = None) -> np.ndarray:
    """RGB uint8 [K, h, w, 3]: the frames of a video at presentation ``indices`` (the n-th frame
    shown, 0-based, as :mod:`mimic_fast.io.video` numbers them), in the order given.

    Raises FrameError when the file is not a regular non-empty file, its frames are over
    ``max_pixels`` (from the container, before decoding), DALI cannot decode it (on CPU: any
    codec but MJPEG, VP8, VP9), or an index lies past the end of the stream: ``stream_frames``
    (the frames the stream holds; default: its demuxed packets, via
    :func:`~mimic_fast.io.video.presentation_times`). That count is needed: for a file cut
    short whose header still announces all its frames, DALI returns black frames for the
    missing ones, without an error.
    """
    import cv2
    from nvidia.dali import fn, pipeline_def, types

    from mimic_fast.io.video import presentation_times

    backend, dev_id = _graph_devices(device, device_id)
    indices = [int(i) for i in indices]
    if not indices:
        return np.zeros((0, 0, 0, 3), np.uint8)
    if min(indices) < 0:
        raise ValueError(f"frame indices must be >= 0, got {min(indices)}")
    data = read_regular_file(path)
    if not data:
        raise FrameError("empty file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:  # the container's frame size, as sample_video judges it, before any frame is decoded
        w, h = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    finally:
        cap.release()
    if w * h > max_pixels:
        raise FrameError(f"video frames too large: {w:g}x{h:g} = {w * h:g} pixels, over the "
                         f"limit of {max_pixels}")
    if backend == "cpu":
        codec = _video_codec(path)
        if codec not in CPU_VIDEO_CODECS:
            raise FrameError(f"DALI decodes {codec} video only on the GPU (NVDEC); on the CPU "
                             f"only {', '.join(sorted(CPU_VIDEO_CODECS))}")
    if stream_frames is None:
        stream_frames = len(presentation_times(path))
    if max(indices) >= stream_frames:
        raise FrameError(f"frame {max(indices)} is past the end of the stream ({stream_frames} "
                         "frames)")

    @pipeline_def(batch_size=1, num_threads=num_threads, device_id=dev_id,
                  prefetch_queue_depth=1, exec_dynamic=True)
    def graph():
        encoded = fn.external_source(name="encoded", batch=True, dtype=types.UINT8)
        frames = fn.external_source(name="frames", batch=True, dtype=types.INT32)
        return fn.decoders.video(encoded, device=backend, frames=frames,
                                 fill_value=list(_PAD_RGB))

    pipe = graph()
    try:
        pipe.build()
        pipe.feed_input("encoded", [np.frombuffer(data, np.uint8)])
        pipe.feed_input("frames", [np.asarray(indices, np.int32)])
        (out,) = pipe.run()
        frames = _host(out)[0]
    except RuntimeError as exc:
        raise _DaliRunFailed(f"cannot decode video with DALI ({device}): "
                             f"{_first_line(exc)}") from None
    finally:
        del pipe
    if frames.shape[0] != len(indices) or frames.ndim != 4 or frames.shape[-1] != 3:
        raise FrameError(f"DALI returned {list(frames.shape)} for {len(indices)} frames")
    if frames.shape[1] * frames.shape[2] > max_pixels:  # a container that gave no size
        raise FrameError(f"video frames too large: {frames.shape[2]}x{frames.shape[1]}")
    padded = (frames == np.asarray(_PAD_RGB, np.uint8)).all(axis=(1, 2, 3))
    if padded.any():
        raise FrameError(f"frame {indices[int(np.argmax(padded))]} is past the end of the stream")
    return frames


def _video_codec(path: str | Path) -> str:
    """The video stream's codec name as FFmpeg calls it (PyAV, no decoding)."""
    import av

    try:
        with av.open(str(path)) as container:
            return container.streams.video[0].codec_context.name
    except (av.error.FFmpegError, IndexError, OSError) as exc:
        raise FrameError(f"cannot open as a video: {exc}") from None


def dali_sample_video(path: str | Path, interval: float = 1.0, stats: dict | None = None,
                      device: str = "cpu", device_id: int | None = None, *,
                      max_pixels: int = MAX_IMAGE_PIXELS) -> Iterator:
    """:func:`mimic_fast.io.video.sample_video`'s samples (same times, same presentation
    indices: :func:`~mimic_fast.io.video.sample_plan` over the demuxed timestamps), decoded by
    DALI in one run. ``stats`` receives "nominal" (the container's frame count) and "decoded"
    (frames the stream holds, by its demuxed packets: DALI decodes only those asked for; for a
    stream cut inside a frame, the frames up to the last sample before the cut, whose samples
    are returned, as sample_video ends there).
    :class:`~mimic_fast.io.video.VideoFrame` s, decoded :data:`VIDEO_GROUP` at a time;
    FrameError as sample_video raises."""
    import math

    import cv2

    from mimic_fast.io.video import VideoFrame, presentation_times, sample_plan

    if not interval > 0:
        raise ValueError(f"interval must be > 0 seconds, got {interval}")
    path = Path(path)
    if not path.is_file():
        raise FrameError("not a regular file" if path.exists() else "no such file")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not cap.isOpened():
            raise FrameError("cannot open as a video")
        fps, count = cap.get(cv2.CAP_PROP_FPS), cap.get(cv2.CAP_PROP_FRAME_COUNT)
    finally:
        cap.release()
    times = presentation_times(path)
    if stats is not None:
        stats["nominal"] = int(count) if math.isfinite(count) and count > 0 else 0
        stats["decoded"] = len(times)
    plan = sample_plan(times, fps, count, interval)
    if not plan:
        raise FrameError(f"shorter than one sample interval ({count:g} frames at {fps:g} fps, "
                         f"interval {interval:g} s)")

    def decode(part):
        return decode_video_frames(path, [i for i, _ in part], device, device_id,
                                   max_pixels=max_pixels, stream_frames=len(times))

    def samples() -> Iterator:
        # decoded VIDEO_GROUP samples at a time, so a long video never holds more than that many
        # full-resolution frames
        for start in range(0, len(plan), VIDEO_GROUP):
            part = plan[start:start + VIDEO_GROUP]
            try:
                frames = decode(part)
            except _DaliRunFailed:
                # A stream cut inside a frame: OpenCV's sample_video ends before that frame, DALI
                # fails the whole run. Find the first sample DALI cannot decode (by bisection, as
                # after a cut every later one fails too) and keep the ones before it.
                try:
                    decode(plan[-1:])
                    last_decodes = True  # the damage is not a cut: report it
                except _DaliRunFailed:
                    last_decodes = False
                if last_decodes or start + len(part) == 1:
                    raise
                ok, bad = -1, len(part) - 1
                while bad - ok > 1:
                    mid = (ok + bad) // 2
                    try:
                        decode(part[mid:mid + 1])
                        ok = mid
                    except _DaliRunFailed:
                        bad = mid
                if start + bad == 0:
                    raise
                part = part[:bad]
                frames = decode(part) if part else []
                if stats is not None:  # frames up to the last one decoded (a lower bound)
                    stats["decoded"] = (part[-1] if part else plan[start - 1])[0] + 1
                yield from (VideoFrame(i, t, rgb) for (i, t), rgb in zip(part, frames))
                return
            yield from (VideoFrame(i, t, rgb) for (i, t), rgb in zip(part, frames))

    return samples()  # the checks above ran now; the decoding runs as it is consumed
