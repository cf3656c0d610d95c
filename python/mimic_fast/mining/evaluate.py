"""Candidate pairs -> matches, RANSAC homography, patch overlap, accept or reject.

A batch of candidates goes through four stages: match -> RANSAC -> overlap -> verdict.

- ``device=None`` (the CPU default): matching with :data:`CPU_MATCHER` (OpenCV's per pair, or
  the batched torch matcher: the same matches; see there for the choice), RANSAC per
  pair with OpenCV (``ransac="opencv"``, as published) or for the whole batch in ONE
  ``mimic_fast.find_homographies`` call (``ransac="native"``), and ONE
  ``mimic_fast.patch_overlap`` call for the batch, on numpy arrays.
- ``device="cpu"``, ``"cuda"`` (or a ``torch.device``): every batched stage on torch tensors on
  that device, one call each: ``mimic_fast.match_descriptors``, ``find_homographies``
  (``ransac="native"``; OpenCV's RANSAC stays per pair on the CPU) and ``patch_overlap``.
- a process whose stage setting is a stage server (:mod:`mimic_fast.mining.stage_server`:
  Ray tasks with a GPU actor) sends the batch there, where it runs as above on its device.

The decisions are the same on every path: the matches are OpenCV's (see
:mod:`mimic_fast.features.batched_matching`) and the later stages run the same kernels.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from mimic_fast.features.homography import ransac_homography
from mimic_fast.features.matching import ratio_match
from mimic_fast.mining.config import MineConfig, method_for
from mimic_fast.mining.device import remote_stages, stage_device
from mimic_fast.mining.views import View

ACCEPTED = "accepted"
# rejection reasons (summary.json "rejected" keys)
FEW_MATCHES = "few_matches"  # <= min_matches ratio-test matches
NO_HOMOGRAPHY = "no_homography"  # RANSAC found no model
INVALID_HOMOGRAPHY = "invalid_homography"  # singular / non-finite H (patch_overlap valid=False)
LOW_OVERLAP = "low_overlap"  # overlap <= low
HIGH_OVERLAP = "high_overlap"  # overlap >= high
STATIC_CAMERA = "static_camera"  # in range, but the background stands still (see below)
NOT_BEST = "not_best"  # group-keep best: in range but another pair of the group overlaps less
FRAME_ERROR = "frame_error"  # list rows whose image could not be used
DUPLICATE = "duplicate"  # list rows repeating an earlier pair


@dataclass
class Candidate:
    v1: View
    v2: View
    matches: int = 0
    inliers: int = 0
    H: np.ndarray | None = None  # [3, 3] float64, v1 pixel -> v2 pixel (size x size views)
    overlap: float = 0.0
    counts: tuple[int, int] = (0, 0)
    static: int = 0  # matches that stand still but are not H-inliers
    correspondences: np.ndarray | None = None  # [K, 2] int (view-1 patch, view-2 patch)
    reason: str = FEW_MATCHES

    @property
    def accepted(self) -> bool:
        return self.reason == ACCEPTED


# The CPU default matcher: "opencv" (cv2.BFMatcher per pair) or "batched" (match_descriptors,
# torch on the CPU). Identical matches; batched is 2.8x faster on one core on mining batches
# (benchmarks/bench_matching.py), about 1 ms of the ~11 ms a candidate costs, but it imports
# torch (1.5-4.5 s per run here), which a CPU `mine` must not need (issue 10).
CPU_MATCHER = "opencv"
# Pairs per match_descriptors call: 256 pairs of 600-keypoint views pad to 2 x 79 MB.
MATCH_PAIRS = 256


_PROCESS = object()  # evaluate's default: this process's stage device (mining.device)


def evaluate(pairs: list[tuple[View, View]], cfg: MineConfig,
             device: Any = _PROCESS) -> list[Candidate]:
    """Candidates for (view 1, view 2) pairs, in the given order, with their verdicts.

    device: None (the CPU default stages on numpy), or "cpu", "cuda", "cuda:N", a
    ``torch.device``: the batched stages on torch tensors on that device; by default the
    process's setting (:mod:`mimic_fast.mining.device`: its device, or the stage server it
    sends its stages to). The verdicts do not depend on it."""
    if device is _PROCESS:
        served = remote_stages()
        if served is not None:
            return served.evaluate(pairs, cfg)
        device = stage_device()
    out = [Candidate(v1, v2) for v1, v2 in pairs]
    if device is not None:
        import torch

        device = torch.device(device)
    matched = []  # (candidate, xy1, xy2) with enough matches for a homography
    for c, idx in zip(out, _matches(out, cfg, device)):
        c.matches = int(idx.shape[0])
        if c.matches > cfg.min_matches:
            matched.append((c, c.v1.features.xy[idx[:, 0]], c.v2.features.xy[idx[:, 1]]))
    with_h = []
    for (c, xy1, xy2), (H, inlier) in zip(matched, _homographies(matched, cfg, device)):
        c.inliers = int(inlier.sum())
        if H is None:
            c.reason = NO_HOMOGRAPHY
            continue
        c.H = H
        c.static = static_outliers(xy1, xy2, inlier, cfg.ransac_threshold)
        with_h.append(c)
    if not with_h:
        return out
    res = _overlaps(np.stack([c.H for c in with_h]), cfg, device)
    for k, c in enumerate(with_h):
        c.overlap = float(res.overlap[k])
        c.counts = (int(res.counts[k, 0]), int(res.counts[k, 1]))
        corr = res.correspondences[k]
        src = np.nonzero(corr >= 0)[0]
        c.correspondences = np.stack([src, corr[src]], axis=1).astype(np.int64)
        c.reason = verdict(bool(res.valid[k]), c.overlap, c.static, c.inliers, cfg)
    return out


def _matches(cands: list[Candidate], cfg: MineConfig, device: Any) -> list[np.ndarray]:
    """Ratio-test matches [M, 2] (view-1 keypoint, view-2 keypoint) per candidate, in query
    order: OpenCV pair by pair, or ONE match_descriptors call per :data:`MATCH_PAIRS` pairs
    (a group's every pair is one batch: padded descriptors of thousands of pairs would not
    fit)."""
    if device is None and CPU_MATCHER == "opencv":
        return [ratio_match(c.v1.features, c.v2.features, cfg.ratio) for c in cands]
    from mimic_fast.features.batched_matching import (
        index_pairs, match_descriptors, pad_descriptors,
    )

    out = []
    for s in range(0, len(cands), MATCH_PAIRS):
        part = cands[s : s + MATCH_PAIRS]
        d1, c1 = pad_descriptors([c.v1.features.descriptors for c in part])
        d2, c2 = pad_descriptors([c.v2.features.descriptors for c in part])
        if device is None:
            with _one_torch_thread():
                rows = match_descriptors(d1, d2, c1, c2, cfg.ratio)
        else:
            rows = match_descriptors(*_to_device((d1, d2, c1, c2), device), ratio=cfg.ratio)
            rows = rows.cpu().numpy()
        out += [index_pairs(rows[b, : c1[b]]) for b in range(len(part))]
    return out


def _homographies(matched: list, cfg: MineConfig,
                  device: Any) -> list[tuple[np.ndarray | None, np.ndarray]]:
    """(H or None, inlier mask) per matched pair: OpenCV's RANSAC pair by pair (deterministic),
    or ``mimic_fast.find_homographies`` on the whole batch, padded (keyed by cfg.seed)."""
    if method_for(cfg.ransac, device) == "opencv" or not matched:
        return [ransac_homography(xy1, xy2, cfg.ransac_threshold) for _, xy1, xy2 in matched]
    import mimic_fast
    from mimic_fast.geometry.ransac import pad_matches

    src, dst, counts = pad_matches([(xy1, xy2) for _, xy1, xy2 in matched])
    if device is not None:
        src, dst, counts = _to_device((src, dst, counts), device)
    r = mimic_fast.find_homographies(src, dst, counts, threshold=cfg.ransac_threshold,
                                     seed=cfg.seed)
    if device is not None:
        r, counts = type(r)(*(x.cpu().numpy() for x in r)), counts.cpu().numpy()
    return [(r.H[b] if r.valid[b] else None, r.inliers[b, : counts[b]])
            for b in range(len(matched))]


def _overlaps(H: np.ndarray, cfg: MineConfig, device: Any):
    """ONE ``mimic_fast.patch_overlap`` call for the batch's homographies [B, 3, 3] (numpy
    results)."""
    import mimic_fast

    if device is not None:
        (H,) = _to_device((H,), device)
    res = mimic_fast.patch_overlap(
        H, image_size=(cfg.size, cfg.size), patch_size=cfg.patch_size, samples=cfg.samples,
        seed=cfg.seed, sampling=cfg.overlap_sampling,
    )
    return res if device is None else type(res)(*(x.cpu().numpy() for x in res))


@contextmanager
def _one_torch_thread():
    """The CPU default matches on the calling worker's one core, as OpenCV's matcher does there
    (mining.worker.init_worker): torch's pool would take every core in every worker, and on a
    busy machine its OpenMP barriers made 2 threads 10-15x slower than 1 (measured)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _to_device(arrays: tuple, device: Any) -> list:
    import torch

    return [torch.from_numpy(a).to(device) for a in arrays]


def static_outliers(xy1: np.ndarray, xy2: np.ndarray, inlier: np.ndarray,
                    threshold: float) -> int:
    """Matches that did not move (identity explains them within ``threshold`` px) but that
    H does not explain: a static background behind a moving object."""
    still = np.linalg.norm(xy1 - xy2, axis=1) < threshold
    return int(np.count_nonzero(still & ~inlier))


def verdict(valid: bool, overlap: float, static: int, inliers: int, cfg: MineConfig) -> str:
    """The overlap filter (keep when low < overlap < high, strict), then the static-camera
    test: a pair in range is rejected when more than ``static_min`` and at least
    ``static_fraction`` x inliers of its matches stand still while H moves them, i.e. H
    follows an object moving in front of a static camera, not a change of viewpoint (the
    published pipeline has no such test; ``static_fraction=0`` turns it off)."""
    if not valid:
        return INVALID_HOMOGRAPHY
    if overlap <= cfg.low:
        return LOW_OVERLAP
    if overlap >= cfg.high:
        return HIGH_OVERLAP
    if cfg.static_fraction > 0 and static > cfg.static_min and (
            static >= cfg.static_fraction * inliers):
        return STATIC_CAMERA
    return ACCEPTED
