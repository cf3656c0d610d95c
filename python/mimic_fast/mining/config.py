"""Mining settings as dataclasses; the CLI fills them, ``config.json`` records them.

:class:`MineConfig` holds everything that decides WHAT a dataset contains (a rerun into the
same folder must use the same values); :class:`RunOptions` holds HOW it is computed
(engine, workers), which may change between a run and its resumption.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mimic_fast.io.images import INTERPOLATIONS, RESIZE_MODES
from mimic_fast.io.sources import KINDS, check_group_by
from mimic_fast.mining.device import is_cuda

GROUP_KEEP = ("all", "best")
WALKS = ("published", "all")
OVERLAP_SAMPLINGS = ("random", "grid")
RANSACS = ("auto", "opencv", "native")
SIFTS = ("auto", "opencv", "native")
DECODERS = ("opencv", "dali")
ENGINES = ("local", "ray")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class MineConfig:
    kind: str = "auto"  # auto | video | frames | group | list
    interval: float = 1.0  # seconds between sampled video frames
    stride: int = 1  # frame-folder step
    walk: str = "published"  # published (the (i, i+2) rule with its skip) | all (no skip)
    group_keep: str = "all"  # all | best (lowest overlap in range per group)
    group_by: str | None = None  # regex: a folder's images grouped by its first capture group
    # on the file name (kind "group" only); None: a folder is one group
    size: int = 224  # views are size x size
    resize: str = "squash"  # squash (published) | crop (centre square)
    interpolation: str = "linear"  # linear (cv2.resize's default, published) | area
    decoder: str = "opencv"  # opencv (as published) | dali (NVIDIA DALI: nvJPEG / NVDEC with
    # --device cuda, its CPU decoders otherwise; no silent switch between them)
    exact_decode: bool = True  # JPEGs decoded in full, as published; False: at 1/2..1/8 size
    # (IDCT scaling) when at least twice the view: faster, but a different (low-passed) view
    min_side: int = 32  # frames with a shorter side are rejected as too small
    sift: str = "auto"  # opencv (cv2.SIFT per view, as published) | native (mimic_fast.sift,
    # batched: the same keypoints within 0.01 px, torch on the stage device) | auto: native on
    # the GPU, opencv on the CPU (where it is 10x faster); `mine` records what auto became
    ratio: float = 0.7  # Lowe ratio
    min_matches: int = 10  # a pair needs MORE than this many ratio-test matches
    ransac_threshold: float = 5.0  # pixels, in the size x size views
    ransac: str = "auto"  # opencv (cv2.findHomography per pair, as published) | native
    # (mimic_fast.find_homographies, one batched call; the same method, its own samples) |
    # auto: native on the GPU, opencv on the CPU; `mine` records what auto became
    patch_size: int = 16
    samples: int = 100  # sample points per patch for patch_overlap
    overlap_sampling: str = "random"  # random (published) | grid (decisions stable, opt-in)
    low: float = 0.5  # keep when low < overlap < high
    high: float = 0.75
    static_fraction: float = 0.0  # static-camera test (0 = off, as published; 0.1 is a good
    # value for footage from static cameras); see mining.evaluate.verdict
    static_min: int = 5
    seed: int = 0  # patch_overlap sampling key (only that: OpenCV's RANSAC is deterministic)
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        _choice("kind", self.kind, KINDS)
        _choice("group_keep", self.group_keep, GROUP_KEEP)
        _choice("walk", self.walk, WALKS)
        _choice("overlap_sampling", self.overlap_sampling, OVERLAP_SAMPLINGS)
        _choice("ransac", self.ransac, RANSACS)
        _choice("sift", self.sift, SIFTS)
        _choice("decoder", self.decoder, DECODERS)
        if self.decoder == "dali" and not self.exact_decode:
            raise ValueError("--no-exact-decode has no DALI twin (DALI decodes JPEGs in full)")
        _choice("resize", self.resize, RESIZE_MODES)
        _choice("interpolation", self.interpolation, INTERPOLATIONS)
        if self.group_by is not None:
            check_group_by(self.group_by, self.kind)
        if not self.interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {self.interval}")
        for name in ("stride", "size", "patch_size", "samples", "min_side"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.size < self.patch_size:
            raise ValueError(f"size ({self.size}) must be at least patch_size ({self.patch_size})")
        if not 0 <= self.low < self.high <= 1:
            raise ValueError(f"need 0 <= low < high <= 1, got low={self.low}, high={self.high}")
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality must be in [1, 100], got {self.jpeg_quality}")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunOptions:
    engine: str = "local"  # local (process pool) | ray
    workers: int = 1  # local engine processes; 1 = in this process
    chunk: int = 64  # videos and frame folders with more sampled frames are split into work
    # units of this many (mining.chunks), so workers share a long source; 0 = never split.
    # The dataset does not depend on it.
    ray_address: str | None = None  # None: an already initialised Ray, else a local one
    device: str = "auto"  # auto (= cpu until the GPU path has run on a GPU) | cpu | cuda
    strict: bool = False  # exit non-zero when anything failed
    retry_failed: bool = False  # rerun sources recorded as failed
    progress: bool = True

    def __post_init__(self) -> None:
        _choice("engine", self.engine, ENGINES)
        _choice("device", self.device, DEVICES)
        if int(self.workers) < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if int(self.chunk) < 0:
            raise ValueError(f"chunk must be >= 0, got {self.chunk}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def method_for(choice: str, device) -> str:
    """What a ``--sift`` or ``--ransac`` choice means on a stage device
    (:mod:`mimic_fast.mining.device`): "auto" is the batched native stage on CUDA, and
    OpenCV's, as published, elsewhere (on one CPU core OpenCV's SIFT does 44 images/s, the
    native 5.6; the native RANSAC is faster there but draws other samples, so decisions near
    a threshold move). Where the stages run on a GPU, speed decides: OpenCV's RANSAC pair by
    pair in the one process holding the GPU would bound it at about 2,500 pairs/s."""
    if choice != "auto":
        return choice
    return "native" if is_cuda(device) else "opencv"


def for_device(config: MineConfig, device) -> MineConfig:
    """``config`` with its "auto" choices made for ``device`` (what config.json records)."""
    return dataclasses.replace(config, sift=method_for(config.sift, device),
                               ransac=method_for(config.ransac, device))


def _choice(name: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
