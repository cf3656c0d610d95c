"""The batched stages served to many mining processes.

With a torch stage device, one :class:`StageServer` per GPU holds the device and its CUDA
context and runs matching, RANSAC, overlap (:func:`mimic_fast.mining.evaluate.evaluate`) and
the native SIFT for every unit: a Ray actor with ``num_gpus=1`` under ``--engine ray``
(:func:`mimic_fast.mining.engines.run_ray`), a process beside the pool under the local engine
with ``--device cuda`` (:mod:`mimic_fast.mining.stage_service`). The units' processes (one
core each, no GPU) decode frames and run OpenCV's SIFT themselves, and hold a
:class:`StageClient` as their stage setting (:mod:`mimic_fast.mining.device`), through which
``evaluate`` reaches the server.

Coalescing: one thread runs the stages; each time it takes every waiting request of one kind
(the same MineConfig, or SIFT frames of one size), up to :data:`MAX_PAIRS` candidate pairs or
``views.SIFT_BATCH`` frames for the device, as ONE batch, so requests that arrive while the
device is busy make the next batch bigger. The dataset does not depend on it: a pair's verdict and a frame's SIFT
do not depend on the batch they are computed in (matching is exact; RANSAC and overlap draw
from RNGs keyed by the seed and the pair's own sample, never its position; SIFT is per frame).
A batch that raises is rerun request by request, so only the request at fault gets the error.

Payload: a request carries each distinct view once, as its SIFT features only (keypoints, and
descriptors as uint8 when they hold integers 0..255, as SIFT's do: a quarter of the bytes),
and the pairs as indices into them; never the pixels.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from mimic_fast.features.sift import Features
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.device import StageServerGone
from mimic_fast.mining.evaluate import Candidate, evaluate
from mimic_fast.mining.views import SIFT_BATCH

MAX_PAIRS = 4096  # candidate pairs per coalesced evaluate batch (a request is never split)

Packed = tuple[np.ndarray, np.ndarray]  # (xy [n, 2] float32, descriptors [n, 128])


def pack(features: Features) -> Packed:
    """A view's features as sent: descriptors as uint8 when that loses nothing."""
    xy, desc = features.xy, features.descriptors
    if desc.dtype == np.float32 and (desc.size == 0 or (desc.min() >= 0 and desc.max() <= 255)):
        small = desc.astype(np.uint8)  # (NaN fails the range test)
        if np.array_equal(small, desc):
            return xy, small
    return xy, desc


def unpack(packed: Packed) -> Features:
    """:func:`pack`'s inverse: the float32 descriptors the stages were given."""
    xy, desc = packed
    return Features(xy, desc.astype(np.float32) if desc.dtype == np.uint8 else desc)


@dataclass
class _Request:
    key: tuple  # requests with equal keys may share a batch
    payload: Any
    size: int  # pairs or frames
    limit: int  # of the sizes in one batch
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class _Coalescer:
    """Callers block in :meth:`submit`; one thread runs ``run(key, payloads) -> results``
    on all waiting requests of the first waiting request's key (in arrival order, up to its
    limit)."""

    def __init__(self, run: Callable[[tuple, list], list]):
        self._run = run
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._closed = False
        self.requests: dict[str, int] = {}  # requests submitted, by kind (key[0])
        self.items: dict[str, int] = {}  # their pairs or frames, by kind
        self.batches: list[int] = []  # requests per batch run, in order
        self.busy_seconds = 0.0  # spent running batches (the device's occupancy, about)
        self._thread = threading.Thread(target=self._loop, name="mining-stages", daemon=True)
        self._thread.start()

    def submit(self, key: tuple, payload: Any, size: int, limit: int) -> Any:
        request = _Request(key, payload, size, limit)
        with self._cond:
            if self._closed:
                raise RuntimeError("the stage server is closed")
            self._queue.append(request)
            self.requests[key[0]] = self.requests.get(key[0], 0) + 1
            self.items[key[0]] = self.items.get(key[0], 0) + size
            self._cond.notify()
        request.done.wait()
        if request.error is not None:
            raise request.error
        return request.result

    def waiting(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = self._take()
            self._serve(batch)

    def _take(self) -> list[_Request]:
        first = self._queue[0]
        batch, rest, size = [], [], 0
        for r in self._queue:
            if r.key == first.key and (not batch or size + r.size <= first.limit):
                batch.append(r)
                size += r.size
            else:
                rest.append(r)
        self._queue = rest
        return batch

    def _serve(self, batch: list[_Request]) -> None:
        self.batches.append(len(batch))
        start = time.perf_counter()
        try:
            results = self._run(batch[0].key, [r.payload for r in batch])
        except BaseException as exc:  # noqa: BLE001 (handed to the callers, never lost)
            self.busy_seconds += time.perf_counter() - start
            if len(batch) == 1:
                batch[0].error = exc
                batch[0].done.set()
                return
            for r in batch:  # alone, so that only the request at fault fails
                self._serve([r])
            return
        self.busy_seconds += time.perf_counter() - start
        for r, res in zip(batch, results):
            r.result = res
            r.done.set()


@dataclass(frozen=True)
class _FeatureView:
    """What the stages read of a :class:`~mimic_fast.mining.views.View`."""

    features: Features


class StageServer:
    """The batched stages on ``device`` for many callers (called concurrently: a Ray actor
    with max_concurrency > 1, or a thread per connection of a local server process).
    ``threads``: this process's CPU threads for them (None: leave the process's settings)."""

    def __init__(self, device: str = "cpu", threads: int | None = None):
        import torch

        self.device = torch.device(device)
        if threads is not None:
            import cv2

            import mimic_fast

            torch.set_num_threads(threads)
            mimic_fast.set_num_threads(threads)
            cv2.setNumThreads(threads)
        if self.device.type == "cuda":
            torch.zeros(1, device=self.device)  # the CUDA context now, not in a request
        self.max_frames = SIFT_BATCH["cuda" if self.device.type == "cuda" else "cpu"]
        self._coalescer = _Coalescer(self._run)

    def evaluate(self, views: list[Packed], pairs: np.ndarray,
                 cfg: MineConfig) -> list[Candidate]:
        """Verdicts of ``pairs`` [P, 2] (indices into ``views``, each a :func:`pack`-ed view),
        in order, as :func:`~mimic_fast.mining.evaluate.evaluate` gives them but without the
        views (``v1``, ``v2`` None)."""
        return self._coalescer.submit(("evaluate", cfg), (views, pairs), len(pairs), MAX_PAIRS)

    def sift(self, gray: np.ndarray) -> list[Packed]:
        """SIFT of frames ``gray`` [B, H, W] uint8: per frame (xy, descriptors :func:`pack`-ed)
        in OpenCV's order (``SiftFeatures.frame(b, order="opencv")``)."""
        gray = np.asarray(gray)
        if gray.ndim != 3 or gray.dtype != np.uint8:
            raise ValueError(f"gray must be uint8 [B, H, W] frames, got {gray.dtype} "
                             f"{list(gray.shape)}")
        return self._coalescer.submit(("sift", gray.shape[1:]), gray, len(gray),
                                      self.max_frames)

    def stats(self) -> dict:
        """Requests served (and their pairs or frames, by kind), how they were batched, and
        the seconds spent running batches."""
        batches = list(self._coalescer.batches)
        return {"device": str(self.device), "requests": dict(self._coalescer.requests),
                "items": dict(self._coalescer.items), "batches": len(batches),
                "largest_batch": max(batches, default=0),
                "busy_seconds": round(self._coalescer.busy_seconds, 3)}

    def waiting(self) -> int:
        """Requests waiting for the stages now."""
        return self._coalescer.waiting()

    def close(self) -> None:
        self._coalescer.close()

    def _run(self, key: tuple, payloads: list) -> list:
        if key[0] == "sift":
            return self._sift_batch(payloads)
        return self._evaluate_batch(key[1], payloads)

    def _evaluate_batch(self, cfg: MineConfig, payloads: list) -> list[list[Candidate]]:
        views: list[_FeatureView] = []
        pairs: list[tuple[_FeatureView, _FeatureView]] = []
        for packed, index in payloads:
            first = len(views)
            views += [_FeatureView(unpack(p)) for p in packed]
            pairs += [(views[first + i], views[first + j]) for i, j in index.tolist()]
        out = [dataclasses.replace(c, v1=None, v2=None)
               for c in evaluate(pairs, cfg, self.device)]
        parts, start = [], 0
        for _, index in payloads:
            parts.append(out[start : start + len(index)])
            start += len(index)
        return parts

    def _sift_batch(self, payloads: list[np.ndarray]) -> list[list[Packed]]:
        import mimic_fast
        from mimic_fast.features.batched_sift import SiftFeatures

        f = mimic_fast.sift(np.concatenate(payloads), device=self.device)
        f = SiftFeatures(*(t.cpu() for t in f))  # one transfer, not one per frame
        frames = [pack(Features(*f.frame(b, order="opencv"))) for b in range(len(f.counts))]
        parts, start = [], 0
        for gray in payloads:
            parts.append(frames[start : start + len(gray)])
            start += len(gray)
        return parts


class StageClient:
    """A mining process's stage setting when a :class:`StageServer` runs its stages:
    ``server`` is a Ray actor handle of one, a connection to a local one
    (:class:`~mimic_fast.mining.stage_service.ServerConnection`), or (tests) the server
    itself; ``device``: the server's (what the process's SIFT batches and ``--sift auto`` are
    chosen for)."""

    def __init__(self, server: Any, device: str = "cuda"):
        self.server = server
        self.device = device

    def evaluate(self, pairs: list[tuple[Any, Any]], cfg: MineConfig) -> list[Candidate]:
        """:func:`~mimic_fast.mining.evaluate.evaluate` of (view 1, view 2) pairs on the
        server: the same candidates."""
        if not pairs:
            return []
        slots: dict[int, int] = {}  # id(view) -> its position in `views` (pairs hold them)
        views, index = [], []
        for pair in pairs:
            for v in pair:
                if slots.setdefault(id(v), len(views)) == len(views):
                    views.append(v)
            index.append([slots[id(v)] for v in pair])
        verdicts = self._call("evaluate", [pack(v.features) for v in views],
                              np.asarray(index, np.int64), cfg)
        return [dataclasses.replace(c, v1=v1, v2=v2) for c, (v1, v2) in zip(verdicts, pairs)]

    def sift(self, gray: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """SIFT of frames ``gray`` [B, H, W] uint8 on the server: per frame (xy [n, 2],
        descriptors [n, 128]) float32, in OpenCV's order, as
        ``mimic_fast.sift(gray).frame(b, order="opencv")`` gives them."""
        frames = [unpack(p) for p in self._call("sift", np.ascontiguousarray(gray))]
        return [(f.xy, f.descriptors) for f in frames]

    def _call(self, method: str, *args: Any) -> Any:
        fn = getattr(self.server, method)
        if hasattr(fn, "remote"):  # a Ray actor's method
            import ray

            try:
                return ray.get(fn.remote(*args))
            except ray.exceptions.RayActorError as exc:  # dead, and its one restart used
                raise StageServerGone(f"the stage server actor is gone ({type(exc).__name__})"
                                      ) from None
        return fn(*args)
