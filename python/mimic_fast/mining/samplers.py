"""Which pairs of a source's views are candidates (the paper, Appendix 8.1).

- ordered (video, frame folder): (i, i+1) for consecutive sampled frames and, when that pair
  is too similar (overlap >= high), also (i, i+2). Streams in chunks so a long video never
  holds more than ``chunk + 2`` views; each chunk's candidates share one patch_overlap call
  per round.
- group (unordered views of one scene): all pairs i < j; keep all in range, or only the
  best (lowest overlap in range; the first in (i, j) order on a tie).
- list (CSV rows): the given pairs, views cached (LRU) across rows.

Each sampler yields every evaluated :class:`Candidate` in a deterministic order (accepted
pairs sorted by their frame indices); the caller writes the accepted ones.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Iterable, Iterator

from mimic_fast.io.images import FrameError
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.evaluate import (
    ACCEPTED, DUPLICATE, FRAME_ERROR, HIGH_OVERLAP, NOT_BEST, Candidate, evaluate,
)
from mimic_fast.mining.views import View

CHUNK = 64


def ordered_candidates(views: Iterable[View], cfg: MineConfig,
                       chunk: int = CHUNK) -> Iterator[Candidate]:
    window: list[View] = []  # the views still needed, window[k] at position first_pos + k
    first_pos = 0  # stream position of window[0]
    next_first = 0  # next position i whose (i, i+1) is due
    waiting: list[int] = []  # positions i with (i, i+1) too similar, (i, i+2) due
    count = 0
    for view in views:
        window.append(view)
        count += 1
        if len(window) >= chunk + 2:
            last = first_pos + len(window) - 1
            yield from _ordered_round(window, first_pos, next_first, waiting, cfg)
            next_first = last
            window = window[-2:]
            first_pos = last - 1
    if count < 2:
        raise FrameError(f"fewer than 2 usable frames ({count})")
    yield from _ordered_round(window, first_pos, next_first, waiting, cfg)


def _ordered_round(window: list[View], first_pos: int, next_first: int, waiting: list[int],
                   cfg: MineConfig) -> list[Candidate]:
    """(i, i+1) for i in [next_first, last) and the due (i, i+2); updates ``waiting``.
    Returns the round's candidates sorted by (i, j): over rounds, a global (i, j) order."""
    last = first_pos + len(window) - 1
    at = lambda pos: window[pos - first_pos]  # noqa: E731
    firsts = evaluate([(at(i), at(i + 1)) for i in range(next_first, last)], cfg)
    out = [((i, i + 1), c) for i, c in zip(range(next_first, last), firsts)]
    waiting.extend(i for (i, _), c in out if c.reason == HIGH_OVERLAP)
    due = [i for i in waiting if i + 2 <= last]
    waiting[:] = [i for i in waiting if i + 2 > last]
    seconds = evaluate([(at(i), at(i + 2)) for i in due], cfg)
    out += [((i, i + 2), c) for i, c in zip(due, seconds)]
    out.sort(key=lambda t: t[0])
    return [c for _, c in out]


def group_candidates(views: list[View], cfg: MineConfig) -> list[Candidate]:
    if len(views) < 2:
        raise FrameError(f"fewer than 2 usable images ({len(views)})")
    pairs = [(views[i], views[j]) for i in range(len(views)) for j in range(i + 1, len(views))]
    out = evaluate(pairs, cfg)
    if cfg.group_keep == "best":
        kept = [c for c in out if c.reason == ACCEPTED]
        if kept:
            best = min(kept, key=lambda c: c.overlap)  # min keeps the first on ties
            for c in kept:
                if c is not best:
                    c.reason = NOT_BEST
    return out


def list_candidates(rows: list[tuple[str, str]], load: Callable[[str, int], View],
                    cfg: MineConfig, errors: list[dict], chunk: int = 256,
                    cache_size: int = 512) -> Iterator[Candidate]:
    """rows: (path1, path2). A path's frame index is its position in first-appearance order."""
    number: dict[str, int] = {}
    for a, b in rows:
        for p in (a, b):
            number.setdefault(p, len(number))
    cache: OrderedDict[str, View | None] = OrderedDict()
    failed: set[str] = set()

    def get(p: str) -> View | None:
        if p in cache:
            cache.move_to_end(p)
            return cache[p]
        try:
            v = load(p, number[p])
        except FrameError as exc:
            v = None
            if p not in failed:
                failed.add(p)
                errors.append({"input": p, "error": str(exc)})
        cache[p] = v
        if len(cache) > cache_size:
            cache.popitem(last=False)
        return v

    seen: set[tuple[int, int]] = set()
    for s in range(0, len(rows), chunk):
        batch, skipped = [], []
        for a, b in rows[s : s + chunk]:
            v1, v2 = get(a), get(b)
            key = (number[a], number[b])
            if v1 is None or v2 is None or key in seen:
                skipped.append(_placeholder(v1, v2, FRAME_ERROR if key not in seen else DUPLICATE))
                continue
            seen.add(key)
            batch.append((v1, v2))
        yield from skipped
        yield from evaluate(batch, cfg)


def _placeholder(v1: View | None, v2: View | None, reason: str) -> Candidate:
    c = Candidate(v1, v2)  # type: ignore[arg-type]
    c.reason = reason
    return c
