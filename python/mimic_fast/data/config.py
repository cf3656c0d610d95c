"""How training data is read: one dataclass, filled by the CLI and written into the run folder."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

DECODERS = ("auto", "cpu", "dali")


@dataclass(frozen=True)
class DataConfig:
    path: str = ""  # dataset folder (tar shards), a .csv of the published layout, or a URL
    decode: str = "auto"  # auto (DALI when importable, training on CUDA from a local shard
    # folder without holdout or streaming, else cpu) | cpu | dali
    num_workers: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))  # DataLoader
    # worker processes per rank (0 = in the training process); more than the cores only queue
    prefetch_factor: int = 4  # batches prefetched per worker
    augment: bool = False  # CroCo augmentations: independent random crops + colour jitter per view
    crop_min_scale: float = 0.5  # random-resized-crop area range [crop_min_scale, 1] (augment)
    color_jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast,
    # saturation, hue (torchvision ColorJitter semantics; augment)
    holdout: float = 0.0  # fraction of pairs (chosen by a hash of the key) kept out of training
    shuffle_buffer: int = 1000  # samples in the shuffle buffer of the streaming (URL) reader
    streaming: bool = False  # force the streaming reader even for a local folder
    max_skip_fraction: float = 0.01  # unreadable samples tolerated (beyond the first 10) before
    # the run stops with an error
    strict: bool = False  # refuse damaged data (a shard or pair that differs from what its
    # index.jsonl records, or any unreadable pair) instead of skipping, counting and warning

    def __post_init__(self) -> None:
        if self.decode not in DECODERS:
            raise ValueError(f"decode must be one of {DECODERS}, got {self.decode!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.prefetch_factor < 1:
            raise ValueError(f"prefetch_factor must be >= 1, got {self.prefetch_factor}")
        if not 0.0 < self.crop_min_scale <= 1.0:
            raise ValueError(f"crop_min_scale must be in (0, 1], got {self.crop_min_scale}")
        if len(self.color_jitter) != 4 or min(self.color_jitter) < 0 or self.color_jitter[3] > 0.5:
            raise ValueError("color_jitter must be 4 non-negative numbers (brightness, contrast, "
                             f"saturation, hue <= 0.5), got {self.color_jitter}")
        if not 0.0 <= self.holdout < 1.0:
            raise ValueError(f"holdout must be in [0, 1), got {self.holdout}")
        if self.shuffle_buffer < 1:
            raise ValueError(f"shuffle_buffer must be >= 1, got {self.shuffle_buffer}")
        if not 0.0 <= self.max_skip_fraction <= 1.0:
            raise ValueError(f"max_skip_fraction must be in [0, 1], got {self.max_skip_fraction}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "DataConfig":
        d = dict(d)
        if "color_jitter" in d:
            d["color_jitter"] = tuple(d["color_jitter"])
        return cls(**d)
