"""The stage server (what a Ray actor per GPU runs) called directly, without Ray: requests
that wait while it is busy run as one batch, and every caller gets exactly the verdicts (and
SIFT) it would have computed itself."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from mimic_fast.features.sift import Features
from mimic_fast.mining import device as stage
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.evaluate import evaluate
from mimic_fast.mining.stage_server import (
    StageClient, StageServer, _Coalescer, pack, unpack,
)
from mimic_fast.mining.views import view_from_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")
FIELDS = ("matches", "inliers", "overlap", "counts", "static", "reason")


@pytest.fixture(scope="module")
def tum_views(shared_data):
    from mimic_fast.io.frames import list_images

    files = list_images(shared_data / "video/tum_freiburg_frames")[:10]
    return [view_from_file(f, MineConfig(), i) for i, f in enumerate(files)]


@pytest.fixture(scope="module")
def tum_pairs(tum_views):
    v = tum_views
    return [(v[i], v[i + 1]) for i in range(len(v) - 1)] + [
        (v[i], v[i + 2]) for i in range(len(v) - 2)]


class HeldServer(StageServer):
    """A stage server whose first batch waits for ``release``: requests sent meanwhile
    queue up, as they do behind a busy GPU."""

    def __init__(self):
        super().__init__("cpu")
        self.release = threading.Event()

    def _run(self, key, payloads):
        assert self.release.wait(120)
        return super()._run(key, payloads)


def _concurrently(server: HeldServer, calls: list) -> list:
    """Runs calls[0] (it holds the server), then the others (they queue), then releases
    the server; returns each call's result or exception."""
    out: list = [None] * len(calls)

    def run(k):
        try:
            out[k] = calls[k]()
        except Exception as exc:  # noqa: BLE001 (the test inspects it)
            out[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    threads[0].start()
    _until(lambda: server.stats()["batches"] == 1)  # the first batch is running, held
    for t in threads[1:]:
        t.start()
    _until(lambda: server.waiting() == len(calls) - 1)
    server.release.set()
    for t in threads:
        t.join(120)
    return out


def _until(condition, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def _same(served, reference) -> None:
    assert len(served) == len(reference)
    for s, r in zip(served, reference):
        assert s.v1 is r.v1 and s.v2 is r.v2  # the caller's own views, not copies
        assert [getattr(s, f) for f in FIELDS] == [getattr(r, f) for f in FIELDS]
        for name in ("H", "correspondences"):
            a, b = getattr(s, name), getattr(r, name)
            assert (a is None and b is None) or np.array_equal(a, b)


def test_waiting_requests_run_as_one_batch_with_each_callers_verdicts(tum_pairs):
    cfg = MineConfig()
    reference = evaluate(tum_pairs, cfg, device=None)  # the CPU default, as a serial run
    assert sum(c.accepted for c in reference) > 0 and any(c.H is not None for c in reference)
    server = HeldServer()
    client = StageClient(server)
    parts = [range(k, len(tum_pairs), 4) for k in range(4)]
    try:
        served = _concurrently(server, [lambda p=p: client.evaluate([tum_pairs[i] for i in p], cfg)
                                        for p in parts])
        stats = server.stats()
        assert stats["batches"] == 2 and stats["largest_batch"] == 3
        assert stats["requests"] == {"evaluate": 4}
        assert stats["items"] == {"evaluate": len(tum_pairs)}
        assert stats["busy_seconds"] > 0
    finally:
        server.close()
    for part, result in zip(parts, served):
        _same(result, [reference[i] for i in part])


class SpyServer(StageServer):
    """Records what each evaluate request carries."""

    def __init__(self):
        super().__init__("cpu")
        self.sent = []

    def evaluate(self, views, pairs, cfg):
        self.sent.append((views, pairs))
        return super().evaluate(views, pairs, cfg)


def test_evaluate_goes_to_the_stage_server_of_the_process(tum_views, tum_pairs):
    cfg = MineConfig()
    server = SpyServer()
    previous = stage.set_stage_device(StageClient(server))
    try:
        assert stage.stage_device() is None  # it computes nothing on a device itself
        served = evaluate(tum_pairs, cfg)
    finally:
        stage.set_stage_device(previous)
        server.close()
    assert server.stats()["requests"] == {"evaluate": 1}
    _same(served, evaluate(tum_pairs, cfg, device=None))
    (views, pairs), = server.sent  # each view once, features only: no pixels travel
    assert len(views) == len(tum_views) and len(pairs) == len(tum_pairs)
    assert all(len(v) == 2 and v[1].dtype == np.uint8 for v in views)
    assert pairs[:2].tolist() == [[0, 1], [1, 2]]


def test_a_request_at_fault_fails_alone(tum_views, tum_pairs):
    cfg = MineConfig()
    views = [pack(v.features) for v in tum_views[:3]]
    good = np.array([[0, 1], [1, 2], [0, 2]])
    bad = np.array([[0, 7]])  # no view 7 in its request
    server = HeldServer()
    try:
        out = _concurrently(server, [lambda: server.evaluate(views, good, cfg),
                                     lambda: server.evaluate(views, bad, cfg),
                                     lambda: server.evaluate(views, good, cfg)])
    finally:
        server.close()
    assert isinstance(out[1], IndexError)
    reference = evaluate([(tum_views[i], tum_views[j]) for i, j in good], cfg, device=None)
    for result in (out[0], out[2]):
        assert [[getattr(c, f) for f in FIELDS] for c in result] == \
            [[getattr(c, f) for f in FIELDS] for c in reference]


def test_sift_is_per_frame_whatever_the_batch(tum_views):
    import cv2

    import mimic_fast

    gray = np.stack([cv2.cvtColor(v.rgb, cv2.COLOR_RGB2GRAY) for v in tum_views[:3]])
    server = HeldServer()
    client = StageClient(server)
    try:
        out = _concurrently(server, [lambda b=b: client.sift(gray[b : b + 1]) for b in range(3)])
        with pytest.raises(ValueError, match=r"uint8 \[B, H, W\]"):
            server.sift(gray[0])
    finally:
        server.close()
    assert server.stats()["batches"] == 2 and server.stats()["largest_batch"] == 2
    frames = out[0] + out[1] + out[2]
    alone = [mimic_fast.sift(gray[b], device="cpu").frame(0, order="opencv") for b in range(3)]
    assert len(frames) == 3
    for (xy, desc), (xy_ref, desc_ref) in zip(frames, alone):
        assert xy.dtype == desc.dtype == np.float32
        assert np.array_equal(xy, xy_ref) and np.array_equal(desc, desc_ref)


def test_descriptors_travel_as_uint8_only_when_that_loses_nothing():
    rng = np.random.default_rng(0)
    xy = rng.random((5, 2), dtype=np.float32)
    whole = rng.integers(0, 256, (5, 128)).astype(np.float32)
    xy_sent, desc_sent = pack(Features(xy, whole))
    assert desc_sent.dtype == np.uint8 and xy_sent is xy
    back = unpack((xy_sent, desc_sent))
    assert back.descriptors.dtype == np.float32 and np.array_equal(back.descriptors, whole)
    for odd in (whole + 0.5, np.where(whole > 128, 256.0, whole).astype(np.float32),
                -whole - 1, np.full((5, 128), np.nan, np.float32)):
        odd = odd.astype(np.float32)
        _, sent = pack(Features(xy, odd))
        assert sent.dtype == np.float32
        np.testing.assert_array_equal(unpack((xy, sent)).descriptors, odd)


def test_a_batch_takes_the_first_kind_waiting_up_to_its_limit_in_arrival_order():
    release = threading.Event()
    runs = []

    def run(key, payloads):
        assert release.wait(60)
        runs.append((key, payloads))
        return [-p for p in payloads]

    coalescer = _Coalescer(run)
    results = {}
    threads = []
    for n, (key, size) in enumerate([("a", 3), ("a", 2), ("b", 1), ("a", 2), ("a", 1)], 1):
        t = threading.Thread(target=lambda n=n, key=key, size=size: results.__setitem__(
            n, coalescer.submit((key,), n, size, limit=4)))
        t.start()
        threads.append(t)
        # one at a time, so that arrival order is submission order (the first is taken at
        # once and held; the others wait)
        _until(lambda n=n: coalescer.waiting() == n - 1 and len(coalescer.batches) == 1)
    release.set()
    for t in threads:
        t.join(60)
    coalescer.close()
    assert runs == [(("a",), [1]), (("a",), [2, 4]), (("b",), [3]), (("a",), [5])]
    assert results == {n: -n for n in range(1, 6)}
    assert coalescer.requests == {"a": 4, "b": 1}


def test_views_get_the_native_sift_from_the_process_stage_server(shared_data):
    """A Ray task's views: the native SIFT is computed by its stage server, in the batches of
    the server's device, and equals what the task would compute itself."""
    from mimic_fast.mining.views import SIFT_BATCH, folder_views

    tum = str(shared_data / "video/tum_freiburg_frames")
    cfg = MineConfig(sift="native")
    server = StageServer("cpu")
    previous = stage.set_stage_device(StageClient(server, "cpu"))
    try:
        served = list(folder_views(tum, cfg, 2, []))
    finally:
        stage.set_stage_device(previous)
        server.close()
    own = list(folder_views(tum, cfg, 2, []))
    assert server.stats()["requests"] == {"sift": -(-len(own) // SIFT_BATCH["cpu"])}
    assert [v.index for v in served] == [v.index for v in own] and len(own) == 9
    for a, b in zip(served, own):
        assert np.array_equal(a.features.xy, b.features.xy)
        assert np.array_equal(a.features.descriptors, b.features.descriptors)


def test_a_served_process_computes_native_sift_without_importing_torch(shared_data):
    """A pool worker whose stage server runs the native SIFT never imports torch (seconds of
    start-up for nothing)."""
    import subprocess
    import sys

    code = f"""
import sys
import numpy as np
from mimic_fast.features.sift import Features
from mimic_fast.mining import device
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.views import folder_views

class Server:  # answers like a stage server, from a process without torch
    device = "cuda"
    def sift(self, gray):
        return [(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))] * len(gray)

device.set_stage_device(Server())
views = list(folder_views({str(shared_data / "video/tum_freiburg_frames")!r},
                          MineConfig(sift="native"), 6, []))
assert len(views) == 3 and all(v.features.xy.shape == (0, 2) for v in views)
assert "torch" not in sys.modules
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
