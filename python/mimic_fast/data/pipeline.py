"""Choosing the reader and decoder for a training run; see :mod:`mimic_fast.data.loader`."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mimic_fast.data.config import DataConfig
from mimic_fast.data.index import open_index, split
from mimic_fast.data.transforms import PairTransform
from mimic_fast.dataset.errors import DataError
from mimic_fast.dataset.paths import list_shards, list_stream_urls, resolve_data_path, stream_records

log = logging.getLogger(__name__)


@dataclass
class BatchSource:
    """An endless iterator of batch dicts plus what it is (for the log and the run record)."""

    batches: object  # iterator of dicts
    reader: str  # "index" | "stream" | "dali"
    pairs: int | None  # pairs in the training split (None when streaming)
    masks_in_batch: bool  # True when the batches carry per-pair masks

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        return next(self.batches)


def choose_decoder(cfg: DataConfig, device: str) -> tuple[str, str]:
    """("cpu" | "dali", reason) following ``cfg.decode``; raises when "dali" cannot run."""
    from mimic_fast.data.dali import DaliUnavailable, dali_available

    if cfg.decode == "cpu":
        return "cpu", "decode=cpu"
    kind = resolve_data_path(cfg.path).kind
    local_shards = kind == "shards" and any(Path(cfg.path).glob("*.tar"))
    ok, why = dali_available() if device == "cuda" else (False, f"device is {device}")
    if cfg.decode == "dali":
        if not ok:
            raise DaliUnavailable(f"decode='dali' was asked for but cannot run: {why}")
        if not local_shards:
            raise DaliUnavailable("decode='dali' needs a local folder of tar shards, "
                                  f"got {cfg.path!r}")
        return "dali", "decode=dali"
    if cfg.holdout or cfg.streaming:  # the DALI reader supports neither
        return "cpu", f"auto: DALI not used ({'holdout' if cfg.holdout else 'streaming'} is set)"
    if ok and local_shards:
        return "dali", "auto: nvidia.dali importable and training on CUDA"
    return "cpu", f"auto: DALI not used ({why if not ok else 'data is not a local shard folder'})"


def train_batches(cfg: DataConfig, *, img_size: int, num_patches: int, num_masked: int,
                  two_views: bool, batch_size: int, rank: int, world: int, seed: int,
                  start_batches: int, device: str, device_id: int = 0,
                  index_cache: str | Path | None = None,
                  stream_positions: list[int | None] | None = None) -> BatchSource:
    """Endless training batches for this rank, starting after ``start_batches`` micro-batches.

    ``stream_positions``: for the streaming reader, the ``stream_pos`` of the last sample each
    worker role had delivered (see :class:`~mimic_fast.data.loader.StreamingPairs`)."""
    from mimic_fast.data import loader as L

    decoder, why = choose_decoder(cfg, device)
    log.info("data: %s decoding (%s)", decoder.upper(), why)
    if decoder == "dali":
        from mimic_fast.data.dali import DaliPairs

        if cfg.holdout:
            raise DataError("holdout is not supported with DALI decoding; use --decode cpu")
        dali = DaliPairs([str(s) for s in list_shards(cfg.path)], batch_size, img_size, two_views,
                         rank, world, device_id, seed=seed * 1000 + rank + 7919 * start_batches,
                         augment=cfg.augment, crop_min_scale=cfg.crop_min_scale,
                         color_jitter=cfg.color_jitter, shuffle_buffer=cfg.shuffle_buffer,
                         num_threads=max(1, cfg.num_workers))
        return BatchSource(dali, "dali", None, masks_in_batch=False)

    transform = PairTransform(img_size, num_patches, num_masked, two_views, cfg.augment,
                              cfg.crop_min_scale, tuple(cfg.color_jitter))
    pin = device == "cuda"
    if cfg.streaming or resolve_data_path(cfg.path).kind == "urls":
        urls = list_stream_urls(cfg.path)
        ds = L.StreamingPairs(urls, transform, seed, rank, world, batch_size, start_batches,
                              cfg.shuffle_buffer, cfg.holdout, stream_positions,
                              records=stream_records(cfg.path), strict=cfg.strict)
        log.info("data: streaming %d shard(s) from %s", len(urls), cfg.path)
        return BatchSource(iter(L.make_loader(ds, cfg, batch_size, pin_memory=pin)), "stream",
                           None, masks_in_batch=True)
    index = split(open_index(cfg.path, index_cache, cfg.strict), cfg.holdout,
                  "train" if cfg.holdout else "all")
    sampler = L.EpochSampler(len(index), batch_size, rank, world, seed, start_batches * batch_size)
    ds = L.PairDataset(index, transform, seed, strict=cfg.strict)
    log.info("data: %d pairs from %s (%d micro-batches of %d per rank per epoch)",
             len(index), cfg.path, len(sampler) // batch_size, batch_size)
    return BatchSource(iter(L.make_loader(ds, cfg, batch_size, sampler, pin_memory=pin)), "index",
                       len(index), masks_in_batch=True)
