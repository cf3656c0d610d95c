"""The ordered walk: the published (i, i+1) / (i, i+2) rule with its skip, resolved over
verdicts computed in chunks, and the exhaustive ``walk="all"``."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest

from mimic_fast.mining import samplers, synthetic
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.evaluate import ACCEPTED, HIGH_OVERLAP, LOW_OVERLAP, Candidate


def published_walk(n: int, kept, above_high) -> list[tuple[int, int]]:
    """The candidates the published video script forms over n frames (its while loop,
    restated): kept(i, j) and above_high(i, j) are the verdicts."""
    formed, i = [], 0
    while i < n - 1:
        formed.append((i, i + 1))
        if not kept(i, i + 1) and above_high(i, i + 1) and i + 2 < n:
            formed.append((i, i + 2))
            if kept(i, i + 2):
                i += 1
        i += 1
    return formed


def _fake_evaluate(table):
    """evaluate() stand-in: the verdict of (view i, view j) from ``table``."""
    def evaluate(pairs, cfg):
        out = []
        for v1, v2 in pairs:
            c = Candidate(v1, v2)
            c.overlap = table[(v1.index, v2.index)]
            c.H = object()
            c.reason = (ACCEPTED if cfg.low < c.overlap < cfg.high else
                        LOW_OVERLAP if c.overlap <= cfg.low else HIGH_OVERLAP)
            out.append(c)
        return out
    return evaluate


@pytest.mark.parametrize("trial", range(40))
def test_published_walk_over_chunks_equals_the_published_loop(monkeypatch, trial):
    rng = random.Random(trial)
    n = rng.randint(2, 40)
    # overlaps drawn so every branch occurs: kept, too low, too high, exactly 0.75
    table = {(i, j): rng.choice([0.3, 0.6, 0.7, 0.75, 0.8, 0.9])
             for i in range(n) for j in (i + 1, i + 2)}
    monkeypatch.setattr(samplers, "evaluate", _fake_evaluate(table))
    cfg = MineConfig()
    want = published_walk(n, lambda i, j: 0.5 < table[(i, j)] < 0.75,
                          lambda i, j: table[(i, j)] > 0.75)
    views = [SimpleNamespace(index=k) for k in range(n)]
    for chunk in (1, 2, 3, 7, 64):
        got = [(c.v1.index, c.v2.index)
               for c in samplers.ordered_candidates(iter(views), cfg, chunk=chunk)]
        assert got == want, (chunk, table)


@pytest.mark.parametrize("trial", range(10))
def test_walk_all_forms_every_consecutive_pair_and_no_skip(monkeypatch, trial):
    rng = random.Random(100 + trial)
    n = rng.randint(2, 30)
    table = {(i, j): rng.choice([0.3, 0.6, 0.75, 0.9]) for i in range(n) for j in (i + 1, i + 2)}
    monkeypatch.setattr(samplers, "evaluate", _fake_evaluate(table))
    cfg = MineConfig(walk="all")
    views = [SimpleNamespace(index=k) for k in range(n)]
    want = sorted([(i, i + 1) for i in range(n - 1)] +
                  [(i, i + 2) for i in range(n - 2) if table[(i, i + 1)] > 0.75])
    for chunk in (1, 4, 64):
        got = [(c.v1.index, c.v2.index)
               for c in samplers.ordered_candidates(iter(views), cfg, chunk=chunk)]
        assert got == want


def test_skip_means_the_next_pair_is_never_formed(monkeypatch):
    # (0,1) too similar, (0,2) kept -> skip 1: the walk goes on with (2,3); (1,2) never formed
    table = {(0, 1): 0.9, (0, 2): 0.6, (1, 2): 0.6, (1, 3): 0.6, (2, 3): 0.6, (2, 4): 0.6,
             (3, 4): 0.6, (3, 5): 0.6}
    monkeypatch.setattr(samplers, "evaluate", _fake_evaluate(table))
    views = [SimpleNamespace(index=k) for k in range(5)]
    got = [(c.v1.index, c.v2.index, c.reason)
           for c in samplers.ordered_candidates(iter(views), MineConfig(), chunk=1)]
    assert got == [(0, 1, HIGH_OVERLAP), (0, 2, ACCEPTED), (2, 3, ACCEPTED), (3, 4, ACCEPTED)]
    all_ = [(c.v1.index, c.v2.index)
            for c in samplers.ordered_candidates(iter(views), MineConfig(walk="all"), chunk=1)]
    assert all_ == [(0, 1), (0, 2), (1, 2), (2, 3), (3, 4)]


def test_real_frames_walk_is_the_published_loop_and_chunking_changes_nothing(tmp_path):
    """On real SIFT verdicts (a camera path over a photo): the formed pairs are those of the
    published loop over the same verdicts, for any chunk size."""
    from mimic_fast.mining.views import folder_views

    frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 14, seed=2)
    synthetic.write_frames(frames, tmp_path)
    cfg_all = MineConfig(walk="all")
    every = {(c.v1.index, c.v2.index): c
             for c in samplers.ordered_candidates(folder_views(str(tmp_path), cfg_all, 1, []),
                                                  cfg_all)}
    assert any(c.overlap > 0.75 for c in every.values())  # the (i, i+2) rule is exercised

    def verdict(i, j):
        if (i, j) not in every:  # the all-walk evaluates (i, i+2) only after a high (i, i+1)
            raise AssertionError(f"published walk asked for ({i}, {j})")
        return every[(i, j)]

    want = published_walk(14, lambda i, j: verdict(i, j).accepted,
                          lambda i, j: verdict(i, j).overlap > 0.75)
    cfg = MineConfig()
    for chunk in (2, 5, 64):
        got = list(samplers.ordered_candidates(folder_views(str(tmp_path), cfg, 1, []), cfg,
                                               chunk=chunk))
        assert [(c.v1.index, c.v2.index) for c in got] == want
        assert [(c.reason, c.overlap) for c in got] == \
            [(every[k].reason, every[k].overlap) for k in want]
