"""Training batches decoded by NVIDIA DALI: the optional fast path (``decode="dali"``).

The pairs, their order and their checks are the CPU reader's (:mod:`mimic_fast.data.loader`);
only the decode, resize and augmentation run in DALI. Python picks each micro-batch from the
same index (:mod:`mimic_fast.data.index`) in the same :class:`~mimic_fast.data.loader.EpochSampler`
order, picks the masked view with the same per-pair generator, reads the encoded views through
``index.read`` (so a pair whose bytes differ from the sha256 its index.jsonl records raises
there) and checks them before DALI sees a byte: a JPEG without its end marker, a header over
:data:`~mimic_fast.io.images.MAX_IMAGE_PIXELS` (judged from the header, whatever the format) or
one that cannot be read. Such a pair is replaced by the next readable one, counted in
``skipped`` and named in a warning, exactly as :class:`~mimic_fast.data.loader.PairDataset`
does (``strict``: DamagedData instead). A pair that passes the checks but that DALI still
cannot decode fails its whole DALI batch; the reader then rebuilds the pipeline and replays the
undelivered batches with every view also decoded by OpenCV first, so the culprit is skipped and
counted like the others. So with ``augment=False`` and views already at ``img_size`` the batches
are the CPU reader's, bit for bit, and resume is exact (``start_batches``).

One graph for both devices: ``device="cpu"`` (DALI's CPU backend: runs without a GPU, which is
how the tests run it) and ``device="gpu"`` (decode on "mixed" = nvJPEG, resize and augment on
the GPU, batches already on the GPU). The GPU graph has never run.

Differences from the CPU path (documented, by design):

* resizing is DALI's (linear with antialiasing) rather than OpenCV's INTER_AREA / INTER_LINEAR:
  a grey level or two apart where views are resized (none when they are at ``img_size``);
* augmentation (random resized crop, colour twist) draws from DALI's generator, seeded by
  (seed, rank, start position): reproducible, but not the CPU path's crops and colours, and a
  resumed run's draws differ from the uninterrupted run's (its pairs and views do not);
* no patch masks in the batch: the trainer draws them on its device.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from mimic_fast.data.loader import MAX_CONSECUTIVE_BAD, EpochSampler
from mimic_fast.data.transforms import DecodeError, check_encoded, decode_rgb
from mimic_fast.dataset.errors import DamagedData, DataError
from mimic_fast.io.dali_decode import DaliUnavailable, dali_missing
from mimic_fast.io.images import MAX_IMAGE_PIXELS

log = logging.getLogger(__name__)

__all__ = ["DaliPairs", "DaliUnavailable", "dali_available"]


def dali_available() -> tuple[bool, str]:
    """(usable for GPU training, why not) for the current process."""
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    why = dali_missing(need_gpu=True)
    return why is None, why or ""


class DaliPairs:
    """Endless iterator of batch dicts: ``target`` (and for CroCo ``reference``) uint8
    [B, 3, S, S] on the pipeline's device (CUDA for "gpu"), and on the CPU ``target_view``,
    ``index`` and ``skipped`` [B] as the CPU reader gives them. No ``mask``.

    index: a :class:`~mimic_fast.data.index.ShardIndex` or CsvIndex (``len``, ``read``,
    ``where``); rank/world/seed/start_batches: as for the CPU reader's EpochSampler.
    """

    def __init__(self, index, batch_size: int, img_size: int, two_views: bool, *, rank: int = 0,
                 world: int = 1, seed: int = 0, augment: bool = False,
                 crop_min_scale: float = 0.5, color_jitter=(0.4, 0.4, 0.4, 0.1),
                 device: str = "gpu", device_id: int | None = 0, num_threads: int = 4,
                 start_batches: int = 0, strict: bool = False,
                 max_pixels: int = MAX_IMAGE_PIXELS):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        why = dali_missing(need_gpu=device == "gpu")
        if why:
            raise DaliUnavailable(f"decode='dali' cannot run: {why}")
        self.index, self.batch_size, self.img_size = index, batch_size, img_size
        self.two_views, self.seed, self.strict = two_views, int(seed), strict
        self.max_pixels = max_pixels
        self.rank, self.world = rank, world
        self.augment, self.crop_min_scale = augment, crop_min_scale
        self.color_jitter = tuple(color_jitter)
        self.device, self.num_threads = device, max(1, num_threads)
        self.device_id = (0 if device_id is None else device_id) if device == "gpu" else None
        self.names = ["target", "reference"] if two_views else ["target"]
        EpochSampler(len(index), batch_size, rank, world, seed)  # too few pairs: raises now
        self.delivered = start_batches  # micro-batches handed out (the position)
        self._bad: dict[int, str] = {}  # index row -> why its bytes are unusable (this process)
        self._feed_error: DataError | None = None
        self._held = None  # the last batch's DALI outputs
        self._start_pipe(screen=0)
        log.info("DALI decoding (%s) of %d pairs, from micro-batch %d", device, len(index),
                 start_batches)

    # --- feeding ---------------------------------------------------------------------------
    def _start_pipe(self, screen: int) -> None:
        """A fresh pipeline fed from micro-batch ``self.delivered``; the first ``screen``
        batches have every view decoded by OpenCV too (after a DALI failure)."""
        self._fed = self.delivered
        self._screen_until = self.delivered + screen
        self._order = iter(EpochSampler(len(self.index), self.batch_size, self.rank, self.world,
                                        self.seed, self.delivered * self.batch_size))
        self.pipe = self._build()

    def _feed(self):
        """One micro-batch for DALI: the encoded views, then target_view, index, skipped."""
        try:
            return self._next_feed()
        except DataError as exc:  # strict data, or a run of bad pairs: the run stops with it,
            self._feed_error = exc  # whatever DALI makes of an exception in its callback
            raise

    def _next_feed(self):
        screen = self._fed < self._screen_until
        views = [[] for _ in self.names]
        meta = [[], [], []]
        for _ in range(self.batch_size):
            epoch, i = next(self._order)
            t, j, attempt, data = self._checked_pair(epoch, i, screen)
            for v, name in enumerate(self.names):
                views[v].append(np.frombuffer(data[t if name == "target" else 1 - t], np.uint8))
            for col, value in zip(meta, (t, j, attempt)):
                col.append(np.asarray(value, np.int64))
        self._fed += 1
        return (*views, *meta)

    def _checked_pair(self, epoch: int, i: int, screen: bool):
        """(target view, index row, rows skipped, (bytes 0, bytes 1)) for sampler item
        (epoch, i): PairDataset's choice of the pair and of its masked view."""
        n = len(self.index)
        # PairTransform's first draw from the pair's generator picks the masked view
        t = int(np.random.default_rng((self.seed, epoch, i)).random() < 0.5)
        for attempt in range(MAX_CONSECUTIVE_BAD):
            j = (i + attempt) % n
            try:
                if j in self._bad:
                    raise DecodeError(self._bad[j])
                data = self.index.read(j)
                used = (data[t], data[1 - t]) if self.two_views else (data[t],)
                for view in used:
                    check_encoded(view, self.max_pixels)
                    if screen:
                        decode_rgb(view, self.max_pixels)
            except (DecodeError, DataError) as exc:
                if isinstance(exc, DecodeError):  # the bytes' fault: never worth reading again
                    self._bad[j] = str(exc)
                if self.strict:
                    raise DamagedData(f"unreadable pair {self.index.where(j)} (strict data): "
                                      f"{exc}") from None
                log.warning("skipping unreadable pair %s: %s", self.index.where(j), exc)
                continue
            return t, j, attempt, data
        raise DataError(f"{MAX_CONSECUTIVE_BAD} consecutive unreadable pairs starting at "
                        f"{self.index.where(i)}; is the dataset corrupt?")

    # --- the graph --------------------------------------------------------------------------
    def _build(self):
        from nvidia.dali import fn, pipeline_def, types

        size, (b, c, s, h) = self.img_size, self.color_jitter
        on_gpu = self.device == "gpu"

        def view(encoded):
            img = fn.decoders.image(encoded, device="mixed" if on_gpu else "cpu",
                                    output_type=types.RGB)
            if self.augment:
                img = fn.random_resized_crop(img, size=[size, size],
                                             random_area=[self.crop_min_scale, 1.0],
                                             random_aspect_ratio=[3 / 4, 4 / 3])
                img = fn.color_twist(
                    img,
                    brightness=fn.random.uniform(range=[max(0.0, 1 - b), 1 + b]),
                    contrast=fn.random.uniform(range=[max(0.0, 1 - c), 1 + c]),
                    saturation=fn.random.uniform(range=[max(0.0, 1 - s), 1 + s]),
                    hue=fn.random.uniform(range=[-h * 360, h * 360]))
            else:
                stored = fn.peek_image_shape(encoded)  # from the header: [h, w, c]
                if (stored[0] != size) | (stored[1] != size):  # at size already: no resampling
                    img = fn.resize(img, size=[size, size])  # (it would cost 5x the decode)
            return fn.transpose(img, perm=[2, 0, 1])  # HWC -> CHW, uint8

        @pipeline_def(batch_size=self.batch_size, num_threads=self.num_threads,
                      device_id=self.device_id, seed=self._graph_seed(),
                      prefetch_queue_depth=2, exec_dynamic=True, enable_conditionals=True)
        def graph():
            outs = fn.external_source(source=self._feed, num_outputs=len(self.names) + 3,
                                      batch=True)
            return (*(view(e) for e in outs[:len(self.names)]), *outs[len(self.names):])

        pipe = graph()
        pipe.build()
        return pipe

    def _graph_seed(self) -> int:
        """DALI's generator (augmentations only): one stream per (seed, rank, start)."""
        return (self.seed * 1_000_003 + self.rank * 7919 + self.delivered) % 2**31

    # --- batches ----------------------------------------------------------------------------
    def __iter__(self):
        return self

    def __next__(self) -> dict:
        try:
            # GPU outputs are made ready on torch's current stream, where they are copied
            outs = self.pipe.run(torch.cuda.current_stream() if self.device == "gpu" else None)
        except RuntimeError as exc:
            if self._feed_error is not None:
                raise self._feed_error from None
            # DALI's own error surfaces at the batch asked for or at one prefetched after it.
            if self._screen_until >= self._fed:  # all of them were screened: not the data
                raise DataError(f"DALI failed on micro-batches {self.delivered}-{self._fed - 1} "
                                f"although OpenCV decodes all of their views: {exc}") from None
            log.warning("DALI failed on micro-batch %d or a prefetched one; replaying from "
                        "there with each view decoded by OpenCV first", self.delivered)
            in_flight = self._fed - self.delivered
            del self.pipe
            self._start_pipe(screen=in_flight + 2)  # + what the new pipeline prefetches
            return next(self)
        self.delivered += 1
        batch = {name: _to_torch(out) for name, out in zip(self.names, outs)}
        for name, out in zip(("target_view", "index", "skipped"), outs[len(self.names):]):
            batch[name] = _to_torch(out)
        self._held = outs  # DALI's buffers outlive the (asynchronous) copies out of them
        return batch


def _to_torch(batch) -> torch.Tensor:
    """A dense DALI TensorList as a torch tensor on its device (one copy, on torch's current
    stream for GPU data)."""
    from nvidia.dali.plugin.pytorch.torch_utils import to_torch_tensor

    return to_torch_tensor(batch.as_tensor(), copy=True)
