"""Views: a source's frames decoded once, resized to the square view, with SIFT computed once.

Every candidate pair a frame takes part in reuses its :class:`View`. Frame-level problems
(an unreadable file in a folder, a video that stops early) are appended to ``errors`` as
{input, error} and the frame is skipped; the source goes on with the frames that work.

A source's views are decoded first and get their SIFT in batches (:func:`with_features`):
OpenCV's one view at a time, the native SIFT (``--sift native``) :func:`sift_batch` views per
``mimic_fast.sift`` call on the stage device, which is what a GPU needs. A frame's features do
not depend on its batch, so neither does the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from mimic_fast.features.sift import Features, sift_rgb
from mimic_fast.io.frames import list_images
from mimic_fast.io.images import DecodedImage, FrameError, read_image, to_view
from mimic_fast.io.sources import group_members
from mimic_fast.io.video import VideoSpan, decode_span, sample_video, truncated
from mimic_fast.mining.config import MineConfig, method_for
from mimic_fast.mining.device import is_cuda, remote_stages, stage_device


@dataclass(frozen=True)
class View:
    index: int  # frame number in the source: presentation index (video), position in the sorted
    # folder listing (frames, group), position in first-appearance order (list)
    rgb: np.ndarray  # [size, size, 3] uint8, what SIFT saw and what gets stored
    features: Features | None  # None until with_features computed it
    original_hw: tuple[int, int]  # (h, w) of the frame at full resolution (a JPEG may have
    # been decoded at 1/2..1/8 of it), before resizing
    time: float | None = None  # seconds (video)
    path: str | None = None  # file (frames, group, list)


def make_view(rgb: np.ndarray, cfg: MineConfig, index: int,
              original_hw: tuple[int, int] | None = None, **where) -> View:
    """One view with its features."""
    return next(with_features([_decoded_view(rgb, cfg, index, original_hw, **where)], cfg))


def _decoded_view(rgb: np.ndarray, cfg: MineConfig, index: int,
                  original_hw: tuple[int, int] | None = None, **where) -> View:
    """A frame resized to its view, features not computed yet."""
    v = to_view(rgb, cfg.size, cfg.resize, cfg.interpolation)
    hw = original_hw or tuple(int(s) for s in rgb.shape[:2])
    return View(index, v, None, hw, **where)


# Views per mimic_fast.sift call (--sift native). On one CPU core 4 is the fastest measured
# (5.6 images/s at 224 px; 1: 4.3, 16: 3.2, out of cache) and keeps a worker's pyramids near
# 80 MB; on the GPU a call's fixed cost (hundreds of small kernels) is paid once per batch.
SIFT_BATCH = {"cpu": 4, "cuda": 64}


def sift_batch() -> int:
    return SIFT_BATCH["cuda" if is_cuda(_sift_device()) else "cpu"]


def _sift_device() -> str | None:
    """Where this process's native SIFT runs: its stage device, or its stage server's."""
    served = remote_stages()
    return served.device if served is not None else stage_device()


def with_features(views: Iterable[View], cfg: MineConfig) -> Iterator[View]:
    """The decoded ``views`` with their SIFT, in order: OpenCV's per view (nothing is held
    back), the native SIFT batched by :func:`sift_batch`."""
    size = 1 if method_for(cfg.sift, _sift_device()) == "opencv" else sift_batch()
    batch: list[View] = []
    for v in views:
        batch.append(v)
        if len(batch) >= size:
            yield from _features_for(batch, cfg)
            batch = []
    yield from _features_for(batch, cfg)


def _features_for(batch: list[View], cfg: MineConfig) -> list[View]:
    return [replace(v, features=f)
            for v, f in zip(batch, features_batch([v.rgb for v in batch], cfg))]


def features_batch(rgbs: list[np.ndarray], cfg: MineConfig) -> list[Features]:
    """SIFT of views: OpenCV's (``sift="opencv"``), or ONE mimic_fast.sift call for all of them
    on the process's stage device or its stage server (``"native"``), keypoints listed in
    OpenCV's order (the matches reach RANSAC in that order)."""
    if method_for(cfg.sift, _sift_device()) == "opencv":
        return [sift_rgb(rgb) for rgb in rgbs]
    if not rgbs:
        return []
    import cv2

    gray = np.stack([cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
                     for rgb in rgbs])
    served = remote_stages()
    if served is not None:  # a worker whose stage server holds the GPU: no torch here
        return [Features(xy, desc) for xy, desc in served.sift(gray)]
    import mimic_fast
    from mimic_fast.features.batched_sift import SiftFeatures

    f = mimic_fast.sift(gray, device=stage_device() or "cpu")
    f = SiftFeatures(*(t.cpu() for t in f))  # one transfer, not one per frame
    return [Features(*f.frame(b, order="opencv")) for b in range(len(rgbs))]


def view_from_file(path: str | Path, cfg: MineConfig, index: int) -> View:
    """One image file's view (FrameError if it cannot be used)."""
    return next(file_views([(index, path)], cfg))


def file_views(files: list[tuple[int, str | Path]], cfg: MineConfig,
               errors: list[dict] | None = None) -> Iterator[View]:
    """Views of (index, path) image files, decoded by cfg.decoder (DALI: in batches); a bad
    file is appended to ``errors`` (read_image's message), or raised without ``errors``."""
    return with_features(_decoded_files(files, cfg, errors), cfg)


def _decoded_files(files: list[tuple[int, str | Path]], cfg: MineConfig,
                   errors: list[dict] | None) -> Iterator[View]:
    if cfg.decoder == "dali":
        decoded = _dali_images(cfg).iter_decode(p for _, p in files)
    else:
        decoded = ((p, _read_or_error(p, cfg)) for _, p in files)
    for (index, path), (_, res) in zip(files, decoded):
        if isinstance(res, FrameError):
            if errors is None:
                raise res
            errors.append({"input": str(path), "error": str(res)})
            continue
        yield _decoded_view(res.rgb, cfg, index, res.size, path=str(path))


def _read_or_error(path: str | Path, cfg: MineConfig) -> DecodedImage | FrameError:
    try:
        return DecodedImage(*read_image(path, cfg.size, cfg.min_side, exact=cfg.exact_decode))
    except FrameError as exc:
        return exc


_dali_decoders: dict = {}  # (device, min_side) -> this process's DaliImageDecoder


def _dali_images(cfg: MineConfig):
    """This process's DALI image decoder (a pipeline costs ~10 ms to build; one per worker,
    one thread: a worker has one core)."""
    from mimic_fast.io.dali_decode import DaliImageDecoder

    key = (_dali_device(), cfg.min_side)
    if key not in _dali_decoders:
        _dali_decoders[key] = DaliImageDecoder(key[0], num_threads=1, min_side=cfg.min_side)
    return _dali_decoders[key]


def _dali_device() -> str:
    return "gpu" if is_cuda(stage_device()) else "cpu"


def video_views(path: str, cfg: MineConfig, errors: list[dict]) -> Iterator[View]:
    """Views of a video every cfg.interval seconds; a stream that ends well before its
    nominal length is recorded as truncated (the frames before the cut are kept)."""
    return with_features(_decoded_video(path, cfg, errors), cfg)


def _decoded_video(path: str, cfg: MineConfig, errors: list[dict]) -> Iterator[View]:
    last = -1
    stats: dict = {}
    if cfg.decoder == "dali":
        from mimic_fast.io.dali_decode import dali_sample_video

        frames = dali_sample_video(path, cfg.interval, stats, _dali_device())
    else:
        frames = sample_video(path, cfg.interval, stats)
    try:
        for frame in frames:
            _check_video_side(frame.rgb, cfg)
            last = frame.index
            yield _decoded_view(frame.rgb, cfg, frame.index, time=round(frame.time, 6))
    except FrameError as exc:
        if last < 0:
            raise
        errors.append({"input": path, "error": f"after frame {last}: {exc}"})
        return
    nominal, decoded = stats.get("nominal", 0), stats.get("decoded", 0)
    if truncated(decoded, nominal):
        errors.append({"input": path, "error": f"truncated: decoded {decoded} of {nominal} "
                                               "frames"})


def span_views(span: VideoSpan, cfg: MineConfig) -> Iterator[View]:
    """Views of some consecutive samples of a video (a chunk; see
    :func:`mimic_fast.io.video.decode_span`): the views :func:`video_views` gives for them.
    Any problem raises (the caller mines the video whole, where problems are recorded)."""
    return with_features(_decoded_span(span, cfg), cfg)


def _decoded_span(span: VideoSpan, cfg: MineConfig) -> Iterator[View]:
    for frame in decode_span(span):
        _check_video_side(frame.rgb, cfg)
        yield _decoded_view(frame.rgb, cfg, frame.index, time=round(frame.time, 6))


def _check_video_side(rgb: np.ndarray, cfg: MineConfig) -> None:
    h, w = rgb.shape[:2]
    if min(h, w) < cfg.min_side:
        raise FrameError(f"video too small: {w}x{h} (shorter side < {cfg.min_side})")


def folder_files(path: str, cfg: MineConfig, group: str | None = None) -> list[Path]:
    """A folder's images sorted by name (only those of ``group`` under cfg.group_by)."""
    if group is None:
        return list_images(path)
    return list(group_members(path, cfg.group_by).get(group, []))


def folder_views(path: str, cfg: MineConfig, stride: int, errors: list[dict],
                 group: str | None = None) -> Iterator[View]:
    """Views of every ``stride``-th image of a folder sorted by name (only those of ``group``
    under cfg.group_by); bad files are skipped."""
    files = folder_files(path, cfg, group)
    return file_views([(i, files[i]) for i in range(0, len(files), stride)], cfg, errors)
