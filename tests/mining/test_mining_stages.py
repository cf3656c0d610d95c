"""evaluate() as batched stages: every path (OpenCV's matcher per pair, the batched matcher on
the CPU default, the torch stages on device "cpu") gives the same candidates, field for field,
for both RANSAC settings, on real frames and generated camera paths; the torch path makes one
call per stage per batch on the requested device."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

import mimic_fast
from mimic_fast.features import batched_matching
from mimic_fast.mining import evaluate as ev
from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.views import make_view


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see conftest.py


@pytest.fixture(scope="module")
def views(shared_data):
    """Per source, views as the mining makes them: 10 real TUM frames, two generated camera
    paths (known to hold accepted and too-similar pairs), and a flat and a tiny-detail image
    (no or few keypoints)."""
    cfg = MineConfig()
    tum = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:10]
    sources = [[make_view(cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB), cfg, k)
                for k, p in enumerate(tum)]]
    for k, name in enumerate(("astronaut", "coffee")):
        frames, _ = synthetic.camera_path(synthetic.photo(name), 8, (240, 320), seed=10 + k)
        sources.append([make_view(f, cfg, i) for i, f in enumerate(frames)])
    flat = np.full((240, 320, 3), 128, np.uint8)
    dot = flat.copy()
    dot[100:140, 150:170] = 255
    sources.append([make_view(flat, cfg, 0), make_view(dot, cfg, 1)])
    return sources


def candidate_pairs(sources):
    """(i, i+1), (i, i+2) in each source, and a few pairs across sources (few matches)."""
    pairs = [(s[i], s[j]) for s in sources for i in range(len(s)) for j in (i + 1, i + 2)
             if j < len(s)]
    pairs += [(sources[0][0], sources[1][0]), (sources[1][3], sources[2][3]),
              (sources[3][0], sources[0][1]), (sources[0][2], sources[3][1])]
    return pairs


FIELDS = [f.name for f in dataclasses.fields(ev.Candidate) if f.name not in ("v1", "v2")]


def assert_same_candidates(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.v1 is w.v1 and g.v2 is w.v2
        for name in FIELDS:
            a, b = getattr(g, name), getattr(w, name)
            if isinstance(b, np.ndarray) or isinstance(a, np.ndarray):
                assert a is not None and b is not None, name
                assert a.dtype == b.dtype, name
                np.testing.assert_array_equal(a, b, err_msg=name)
            else:
                assert a == b, (name, a, b)


@pytest.mark.parametrize("ransac", ["opencv", "native"])
def test_every_path_gives_the_published_matchers_candidates(views, monkeypatch, ransac):
    cfg = MineConfig(ransac=ransac)
    pairs = candidate_pairs(views)
    monkeypatch.setattr(ev, "CPU_MATCHER", "opencv")
    want = ev.evaluate(pairs, cfg)  # today's path: OpenCV's matcher pair by pair
    reasons = {c.reason for c in want}
    assert {ev.ACCEPTED, ev.FEW_MATCHES, ev.HIGH_OVERLAP} <= reasons, reasons
    assert sum(c.matches == 0 for c in want) >= 2  # the flat view: no keypoints at all
    monkeypatch.setattr(ev, "CPU_MATCHER", "batched")
    assert_same_candidates(ev.evaluate(pairs, cfg), want)
    assert_same_candidates(ev.evaluate(pairs, cfg, device="cpu"), want)
    assert_same_candidates(ev.evaluate(pairs, cfg, device=torch.device("cpu")), want)
    # a pair's verdict does not depend on its batch
    for k in (0, 7, len(pairs) - 1):
        assert_same_candidates(ev.evaluate(pairs[k:k + 1], cfg, device="cpu"), want[k:k + 1])


def test_torch_stages_one_call_each_on_the_device(views, monkeypatch):
    cfg = MineConfig(ransac="native")
    pairs = candidate_pairs(views)
    calls = []

    def spy(name, fn):
        def wrapped(*args, **kwargs):
            calls.append((name, [a.device.type for a in args if isinstance(a, torch.Tensor)]))
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(batched_matching, "match_descriptors",
                        spy("match", batched_matching.match_descriptors))
    monkeypatch.setattr(mimic_fast, "find_homographies",
                        spy("ransac", mimic_fast.find_homographies))
    monkeypatch.setattr(mimic_fast, "patch_overlap", spy("overlap", mimic_fast.patch_overlap))
    out = ev.evaluate(pairs, cfg, device="cpu")
    assert [name for name, _ in calls] == ["match", "ransac", "overlap"]
    assert [devices for _, devices in calls] == [["cpu"] * 4, ["cpu"] * 3, ["cpu"]]
    assert any(c.accepted for c in out)
    calls.clear()
    assert ev.evaluate([], cfg, device="cpu") == [] and calls == []
    monkeypatch.setattr(ev, "MATCH_PAIRS", 20)  # a large group: matched 20 pairs per call
    assert_same_candidates(ev.evaluate(pairs, cfg, device="cpu"), out)
    assert [name for name, _ in calls] == ["match"] * 3 + ["ransac", "overlap"]


def test_cpu_default_matcher_runs_on_one_torch_thread(views, monkeypatch):
    """The CPU default keeps to the worker's one core and leaves torch's setting as it was."""
    seen = []
    real = batched_matching.match_descriptors
    monkeypatch.setattr(batched_matching, "match_descriptors",
                        lambda *a, **k: seen.append(torch.get_num_threads()) or real(*a, **k))
    monkeypatch.setattr(ev, "CPU_MATCHER", "batched")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        ev.evaluate(candidate_pairs(views)[:3], MineConfig())
        assert seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.cuda
@pytest.mark.skipif(
    not (torch.cuda.is_available() and mimic_fast.build_config()["cuda_devices"] > 0),
    reason="needs a CUDA GPU and a CUDA build")
@pytest.mark.parametrize("ransac", ["opencv", "native"])
def test_cuda_stages_give_the_cpu_candidates(views, ransac):
    cfg = MineConfig(ransac=ransac)
    pairs = candidate_pairs(views)
    want = ev.evaluate(pairs, cfg)
    assert_same_candidates(ev.evaluate(pairs, cfg, device="cuda"), want)


def test_torch_is_imported_only_by_the_paths_that_use_it(shared_data):
    """Importing the stages costs no torch import (the CLI stays fast), nor does evaluating
    with OpenCV's matcher on the CPU; the batched matcher imports it."""
    import subprocess
    import sys

    frames = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:2]
    code = f"""
import sys, cv2
from mimic_fast.mining import evaluate as ev
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.views import make_view
assert "torch" not in sys.modules, "import"
views = [make_view(cv2.imread(p)[..., ::-1].copy(), MineConfig(), k)
         for k, p in enumerate({[str(p) for p in frames]!r})]
ev.CPU_MATCHER = "opencv"
assert ev.evaluate([tuple(views)], MineConfig())[0].matches > 10
assert "torch" not in sys.modules, "opencv path"
ev.CPU_MATCHER = "batched"
ev.evaluate([tuple(views)], MineConfig())
assert "torch" in sys.modules
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
