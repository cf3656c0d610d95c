"""Choosing the reader and decoder for a training run; see :mod:`mimic_fast.data.loader`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

from mimic_fast.data.config import DataConfig
from mimic_fast.data.index import open_index, split
from mimic_fast.data.transforms import PairTransform
from mimic_fast.dataset.paths import list_stream_urls, resolve_data_path, stream_records

log = logging.getLogger(__name__)


class BatchSource:
    """Endless training batches for one rank, and where it stands in the data.

    The position is its own state, as torchdata's ``StatefulDataLoader`` keeps it:
    ``state_dict()`` says where it is, ``load_state_dict()`` (before the first batch) puts it
    there again, and the first ``next`` starts the reader at that point. The position is the
    number of micro-batches delivered (the readers skip exactly that many) and, for the
    streaming reader, the stream position each worker role last delivered (batch b comes from
    worker b % workers). A training loop only saves and loads it.
    """

    def __init__(self, start: Callable[[int, list], Iterator[dict]], reader: str,
                 pairs: int | None, masks_in_batch: bool, *, world: int, num_workers: int,
                 lost_pairs: int = 0):
        self._start = start  # (micro-batches to skip, stream positions) -> batch iterator
        self._batches: Iterator[dict] | None = None
        self.reader = reader  # "index" | "stream" | "dali"
        self.pairs = pairs  # pairs in the training split (None when streaming)
        self.masks_in_batch = masks_in_batch  # True when the batches carry per-pair masks
        self.lost_pairs = lost_pairs  # pairs of damaged shards left out when indexing
        self.world, self.num_workers = world, num_workers
        self._roles = max(1, num_workers)
        self.micro_batches = 0
        self.stream_pos: list[int | None] = [None] * self._roles

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        if self._batches is None:
            self._batches = self._start(self.micro_batches, list(self.stream_pos))
        batch = next(self._batches)
        if "stream_pos" in batch:  # a CPU tensor: no device sync
            self.stream_pos[self.micro_batches % self._roles] = int(batch["stream_pos"][-1])
        self.micro_batches += 1
        return batch

    def state_dict(self) -> dict:
        return {"micro_batches": self.micro_batches, "world_size": self.world,
                "num_workers": self.num_workers, "reader": self.reader,
                "stream_pos": list(self.stream_pos) if self.reader == "stream" else None}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (this rank's). With another world size the data order
        continues approximately (the pairs consumed by all ranks are skipped)."""
        if self._batches is not None:
            raise RuntimeError("load_state_dict must come before the first batch")
        self.micro_batches = state["micro_batches"] * state["world_size"] // self.world
        if state["world_size"] != self.world:
            log.warning("world size changed %d -> %d: the data order continues approximately",
                        state["world_size"], self.world)
        same_roles = max(1, state["num_workers"]) == self._roles
        if state.get("stream_pos") and state["world_size"] == self.world and same_roles:
            self.stream_pos = list(state["stream_pos"])


def choose_decoder(cfg: DataConfig, device: str) -> tuple[str, str]:
    """("cpu" | "dali", reason) following ``cfg.decode``; raises when "dali" cannot run."""
    from mimic_fast.data.dali import DaliUnavailable, dali_available

    if cfg.decode == "cpu":
        return "cpu", "decode=cpu"
    # the DALI reader reads through the training index (a shard folder or a CSV), not streams
    indexed = not cfg.streaming and resolve_data_path(cfg.path).kind != "urls"
    ok, why = dali_available() if device == "cuda" else (False, f"device is {device}")
    if cfg.decode == "dali":
        if not ok:
            raise DaliUnavailable(f"decode='dali' was asked for but cannot run: {why}")
        if not indexed:
            raise DaliUnavailable("decode='dali' reads an indexed dataset (a shard folder or a "
                                  f"CSV), not a stream: got {cfg.path!r}"
                                  + (" with streaming" if cfg.streaming else ""))
        return "dali", "decode=dali"
    if ok and indexed:
        return "dali", "auto: nvidia.dali importable and training on CUDA"
    return "cpu", f"auto: DALI not used ({why if not ok else 'the data is streamed'})"


def train_batches(cfg: DataConfig, *, img_size: int, num_patches: int, num_masked: int,
                  two_views: bool, batch_size: int, rank: int, world: int, seed: int,
                  device: str, device_id: int = 0,
                  index_cache: str | Path | None = None) -> BatchSource:
    """Endless training batches for this rank, from the start of the data (or from where
    :meth:`BatchSource.load_state_dict` puts them)."""
    from mimic_fast.data import loader as L

    decoder, why = choose_decoder(cfg, device)
    log.info("data: %s decoding (%s)", decoder.upper(), why)
    state = dict(world=world, num_workers=cfg.num_workers)
    if decoder == "dali":
        from mimic_fast.data.dali import DaliPairs

        index = split(open_index(cfg.path, index_cache, cfg.strict), cfg.holdout,
                      "train" if cfg.holdout else "all")

        def start_dali(micro_batches: int, _) -> Iterator[dict]:
            return DaliPairs(index, batch_size, img_size, two_views, rank=rank, world=world,
                             seed=seed, augment=cfg.augment, crop_min_scale=cfg.crop_min_scale,
                             color_jitter=cfg.color_jitter, device="gpu", device_id=device_id,
                             num_threads=max(1, cfg.num_workers),
                             start_batches=micro_batches, strict=cfg.strict)
        return BatchSource(start_dali, "dali", len(index), masks_in_batch=False,
                           lost_pairs=getattr(index, "lost_pairs", 0), **state)

    transform = PairTransform(img_size, num_patches, num_masked, two_views, cfg.augment,
                              cfg.crop_min_scale, tuple(cfg.color_jitter))
    pin = device == "cuda"
    if cfg.streaming or resolve_data_path(cfg.path).kind == "urls":
        urls = list_stream_urls(cfg.path)
        records = stream_records(cfg.path)
        log.info("data: streaming %d shard(s) from %s", len(urls), cfg.path)

        def start_stream(micro_batches: int, positions: list) -> Iterator[dict]:
            ds = L.StreamingPairs(urls, transform, seed, rank, world, batch_size, micro_batches,
                                  cfg.shuffle_buffer, cfg.holdout, positions, records=records,
                                  strict=cfg.strict)
            return iter(L.make_loader(ds, cfg, batch_size, pin_memory=pin))
        return BatchSource(start_stream, "stream", None, masks_in_batch=True, **state)
    index = split(open_index(cfg.path, index_cache, cfg.strict), cfg.holdout,
                  "train" if cfg.holdout else "all")
    ds = L.PairDataset(index, transform, seed, strict=cfg.strict)
    epoch = L.EpochSampler(len(index), batch_size, rank, world, seed)  # too few pairs: raises
    log.info("data: %d pairs from %s (%d micro-batches of %d per rank per epoch)",
             len(index), cfg.path, len(epoch) // batch_size, batch_size)

    def start_index(micro_batches: int, _) -> Iterator[dict]:
        sampler = L.EpochSampler(len(index), batch_size, rank, world, seed,
                                 micro_batches * batch_size)
        return iter(L.make_loader(ds, cfg, batch_size, sampler, pin_memory=pin))
    return BatchSource(start_index, "index", len(index), masks_in_batch=True,
                       lost_pairs=getattr(index, "lost_pairs", 0), **state)
