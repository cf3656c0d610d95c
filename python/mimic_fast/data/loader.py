"""Training batches from a mined dataset: deterministic order, rank/worker splitting, resume.

Two readers, one batch format (a dict of CPU tensors, ``target``/``reference`` uint8
[B, 3, S, S], ``mask`` bool [B, N] (True = masked), ``target_view`` [B] (0 or 1),
``index`` [B], ``skipped`` [B] (unreadable samples replaced by this one); the streaming
reader adds ``stream_pos`` [B] (stream items its worker had consumed, for exact resume)):

* Local shards or a CSV (the default): a map-style :class:`PairDataset` over the dataset
  index and an endless :class:`EpochSampler`. Epoch ``e`` is a permutation seeded by
  (seed, e), cut to a whole number of GLOBAL micro-batches; rank ``r`` of ``W`` takes
  positions r, r+W, ... So the global sequence of micro-batches depends only on the seed and
  on W * batch_size: 2 ranks x 2 pairs see exactly what 1 rank x 4 pairs sees. The position
  is the number of micro-batches consumed; a resumed run starts the sampler there and
  continues exactly (any number of workers). A sample that cannot be decoded, or whose
  bytes do not match the sha256 its index records, is replaced by the next readable one
  (deterministically), counted in ``skipped`` and named in a warning; the pairs a damaged
  shard lost are left out of the index, counted and named when it is built
  (:class:`~mimic_fast.data.index.ShardIndex`).
* URLs (fsspec: s3://, gs://, http://, ...) or ``streaming=True``: :class:`StreamingPairs`,
  an endless WebDataset-style stream. Shards are permuted per epoch and split over
  (rank, worker) slots (or, with fewer shards than slots, every slot reads every shard and
  keeps every slots-th sample), then pass a seeded shuffle buffer. Resume replays the stream
  and skips the stream items each worker had consumed (exact with the same world size and
  workers); an unreadable or damaged sample (checked against the index.jsonl beside the
  shards when there is one), or the rest of a shard that cannot be read or breaks off, is
  skipped, counted (one per lost pair when the index says how many) and named in a warning.
  ``strict`` (``DataConfig.strict``, ``--strict-data``): damage raises DamagedData instead,
  in both readers. Ranks never run dry (the stream is endless), so no rank waits on another
  at an epoch end.
"""

from __future__ import annotations

import functools
import itertools
import logging
import zlib

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

from mimic_fast._lifeline import process_identity
from mimic_fast.data.config import DataConfig
from mimic_fast.data.transforms import DecodeError, PairTransform
from mimic_fast.dataset.errors import DamagedData, DataError
from mimic_fast.dataset.reader import ShardRecord, iter_tar_pairs

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_BAD = 16


class PairDataset(Dataset):
    """Map-style: item ``(epoch, i)`` -> one decoded sample with its random choices.

    ``key_by="index"`` seeds a pair's randomness with (seed, epoch, i) (training);
    ``key_by="key"`` with (seed, crc32(key)), so a pair gets the same view and mask in every
    evaluation whatever the dataset around it (eval). ``strict``: an unreadable or damaged
    pair raises instead of being replaced.
    """

    def __init__(self, index, transform: PairTransform, seed: int, key_by: str = "index",
                 strict: bool = False):
        self.index, self.transform, self.seed, self.key_by = index, transform, int(seed), key_by
        self.strict = strict

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item) -> dict:
        epoch, i = item if isinstance(item, tuple) else (0, item)
        n = len(self.index)
        for attempt in range(MAX_CONSECUTIVE_BAD):
            j = (i + attempt) % n
            if self.key_by == "key":
                rng = np.random.default_rng((self.seed, zlib.crc32(self.index.keys[j].encode())))
            else:
                rng = np.random.default_rng((self.seed, epoch, i))
            try:
                sample = self.transform(self.index.read(j), rng)
            except (DecodeError, DataError) as exc:
                if self.strict:
                    raise DamagedData(f"unreadable pair {self.index.where(j)} (strict data): "
                                      f"{exc}") from None
                log.warning("skipping unreadable pair %s: %s", self.index.where(j), exc)
                continue
            sample["index"], sample["skipped"] = j, attempt
            return sample
        raise DataError(f"{MAX_CONSECUTIVE_BAD} consecutive unreadable pairs starting at "
                        f"{self.index.where(i)}; is the dataset corrupt?")


class EpochSampler(Sampler):
    """Endless stream of (epoch, index) for one rank, starting ``start`` samples in."""

    def __init__(self, n: int, batch_size: int, rank: int = 0, world: int = 1, seed: int = 0,
                 start: int = 0):
        global_batch = batch_size * world
        self.per_rank = (n // global_batch) * batch_size
        if self.per_rank == 0:
            raise DataError(f"dataset has {n} pairs, fewer than one global micro-batch "
                            f"({batch_size} per rank x {world} ranks = {global_batch})")
        self.n, self.rank, self.world, self.seed, self.start = n, rank, world, int(seed), start

    def epoch_order(self, epoch: int) -> np.ndarray:
        perm = np.random.default_rng((self.seed, epoch)).permutation(self.n)
        return perm[: self.per_rank * self.world][self.rank:: self.world]

    def __iter__(self):
        epoch, pos = divmod(self.start, self.per_rank)
        while True:
            for i in self.epoch_order(epoch)[pos:]:
                yield epoch, int(i)
            epoch, pos = epoch + 1, 0

    def __len__(self) -> int:  # per epoch; the stream itself is endless
        return self.per_rank


class StreamingPairs(IterableDataset):
    """Endless stream of samples from tar shards given as local paths or fsspec URLs."""

    def __init__(self, urls: list[str], transform: PairTransform, seed: int, rank: int, world: int,
                 batch_size: int, start_batches: int = 0, shuffle_buffer: int = 1000,
                 holdout: float = 0.0, start_positions: list[int | None] | None = None,
                 records: dict[str, ShardRecord] | None = None, strict: bool = False):
        if not urls:
            raise DataError("no shards to stream")
        self.urls, self.transform, self.seed = list(urls), transform, int(seed)
        self.rank, self.world, self.batch_size = rank, world, batch_size
        self.start_batches, self.buffer, self.holdout = start_batches, shuffle_buffer, holdout
        self.start_positions = start_positions
        self.records = records or {}  # shard file name -> what index.jsonl records
        self.strict = strict

    def __iter__(self):
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        # The DataLoader takes batches from workers round-robin, starting at worker 0: of the
        # first m batches, worker r made those with index = r (mod nw). A resumed loader
        # starts at its worker 0 again, so its worker w plays the part of worker (w + m) % nw
        # ("role") and skips the stream items that one had consumed: its last sample's
        # ``stream_pos`` when the trainer recorded it (exact, unreadable items included),
        # else the samples it had delivered (exact only when none was unreadable).
        m = self.start_batches
        role = (wid + m) % nw
        slot, slots = self.rank * nw + role, self.world * nw
        known = self.start_positions[role] if self.start_positions and \
            len(self.start_positions) == nw else None
        skip = int(known) if known is not None else \
            max(0, (m - role + nw - 1) // nw) * self.batch_size
        raw = bad = 0  # stream items consumed by this role; unreadable ones since the last yield
        for epoch in itertools.count():
            mine = self.slot_pairs(epoch, slot, slots)
            rng = np.random.default_rng((self.seed, epoch, slot))
            count = 0
            for pos, (key, data) in enumerate(_shuffle(mine, self.buffer, rng)):
                raw += 1
                count += data is not None
                if skip:  # replaying what the interrupted run consumed
                    skip -= 1
                    continue
                if data is None:  # a shard that failed part-way (logged by slot_pairs)
                    bad += 1
                    continue
                try:
                    sample = self.transform(data, np.random.default_rng((self.seed, epoch, slot, pos)))
                except DecodeError as exc:
                    log.warning("skipping unreadable pair %s: %s", key, exc)
                    bad += 1
                    continue
                sample["index"], sample["skipped"], sample["stream_pos"] = -1, bad, raw
                bad = 0
                yield sample
            if count == 0:
                raise DataError(f"streaming reader slot {slot} of {slots}: no readable pairs in its "
                                f"share of {len(self.urls)} shard(s) (e.g. {self.urls[0]})")

    def slot_pairs(self, epoch: int, slot: int, slots: int):
        """(key, data) of one slot's share of an epoch, before the shuffle buffer. A damaged
        pair gives (key, None); a shard that cannot be read (or breaks off) is logged and
        gives (url, None) items instead of the rest of its pairs (one per recorded pair it
        lost, or one when none is recorded), which the reader counts as unreadable. With
        ``strict``, damage raises DamagedData instead."""
        order = np.random.default_rng((self.seed, epoch)).permutation(len(self.urls))
        if len(self.urls) >= slots:  # split by shard
            urls, keep = [self.urls[k] for k in order[slot::slots]], None
        else:  # fewer shards than slots: every slot reads all, keeps every slots-th pair
            urls, keep = [self.urls[k] for k in order], slot
        limit = int(self.holdout * 2**32)
        k = 0
        for url in urls:
            try:
                record = self.records.get(url.rstrip("/").rsplit("/", 1)[-1])
                for key, data in iter_tar_pairs(url, record, self.strict):
                    if limit and zlib.crc32(key.encode()) < limit:
                        continue  # held out (the same rule as index.holdout_rows)
                    if keep is None or k % slots == keep:
                        yield key, data
                    k += 1
            except (DataError, OSError) as exc:
                if self.strict and isinstance(exc, DamagedData):
                    raise
                lost = getattr(exc, "lost", None) or 1
                log.warning("skipping the rest of shard %s (%s pair(s) lost): %s", url,
                            lost if getattr(exc, "lost", None) else "an unknown number of",
                            exc)
                for _ in range(lost):
                    if keep is None or k % slots == keep:
                        yield url, None
                    k += 1


def _shuffle(items, size: int, rng: np.random.Generator):
    buf = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        yield buf[j]
        buf[j] = item
    rng.shuffle(buf)
    yield from buf


def _worker_init(_, driver: tuple):
    """One thread per worker; and the worker ends with the training process (its parent is
    the forkserver, which outlives a killed trainer: :mod:`mimic_fast._lifeline`)."""
    import cv2

    from mimic_fast._lifeline import exit_with

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    exit_with(driver)


def make_loader(dataset, cfg: DataConfig, batch_size: int, sampler=None, pin_memory: bool = False,
                drop_last: bool = True):
    """A DataLoader of fixed-size batches (the last partial batch dropped unless asked).

    Workers start with ``forkserver``, not ``fork``: the training process has threads by the
    time the loader starts (CUDA, OpenMP, TensorBoard's writer, OpenCV's pool), and a child
    forked from a threaded parent can deadlock on a lock some thread held (seen here: workers
    stuck in a futex after in-process training). Workers are persistent, so this costs one
    interpreter start per worker per run.
    """
    workers = cfg.num_workers
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
        drop_last=drop_last, pin_memory=pin_memory,
        worker_init_fn=functools.partial(_worker_init, driver=process_identity()) if workers
        else None,
        prefetch_factor=cfg.prefetch_factor if workers else None,
        persistent_workers=bool(workers),
        multiprocessing_context="forkserver" if workers else None,
    )
