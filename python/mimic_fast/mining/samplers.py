"""Which pairs of a source's views are candidates (the paper, Appendix 8.1).

- ordered (video, frame folder): the published walk (the MIMIC video script): candidate
  (i, i+1), kept when low < overlap < high; when overlap > high (strict) also (i, i+2), and
  when THAT one is kept the walk skips i+1, so (i+1, i+2) is never formed. ``walk="all"``
  forms (i, i+1) for every i (no skip): more pairs, some of them redundant. Verdicts are
  computed in chunks (a chunk's (i, i+1) in one patch_overlap call, its needed (i, i+2) in
  another), and the walk is resolved afterwards in a cheap sequential pass
  (:class:`OrderedWalk`), so the result does not depend on the chunking; a long video never
  holds more than ``chunk + 2`` views.
- group (unordered views of one scene): all pairs i < j; keep all in range, or only the
  best (lowest overlap in range; the first in (i, j) order on a tie).
- list (CSV rows): the given pairs, views cached (LRU) across rows.

Each sampler yields every candidate the walk forms, in a deterministic order (ordered
sources: by (i, j)); the caller writes the accepted ones.
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
GROUP_BATCH = 1024  # group pairs per evaluate call (progress moves between them)
Verdicts = dict[tuple[int, int], Candidate]  # (position i, position j) -> evaluated candidate


def needs_second(first: Candidate, cfg: MineConfig) -> bool:
    """Whether the walk also tries (i, i+2): (i, i+1) overlaps MORE than ``high`` (a pair at
    exactly ``high`` is neither kept nor followed up, as published)."""
    return first.reason == HIGH_OVERLAP and first.overlap > cfg.high


class OrderedWalk:
    """The walk over verdicts that arrive in chunks: :meth:`advance` takes the candidates the
    walk forms from ``verdicts`` (removing them, and dropping those it skips), as far as the
    verdicts known so far decide it."""

    def __init__(self, cfg: MineConfig):
        self.cfg = cfg
        self.pos = 0  # the next i whose (i, i+1) the walk forms

    def advance(self, verdicts: Verdicts, last: int, final: bool) -> list[Candidate]:
        """last: the highest position seen; every (i, i+1) with i < last and every needed
        (i, i+2) with i + 2 <= last is in ``verdicts``. final: no position comes after last."""
        out = []
        while (self.pos, self.pos + 1) in verdicts:
            i = self.pos
            first = verdicts[(i, i + 1)]
            second = None
            if needs_second(first, self.cfg):
                if i + 2 <= last:
                    second = verdicts.pop((i, i + 2))
                elif not final:
                    break  # frame i+2 not seen yet
            del verdicts[(i, i + 1)]
            out += [first] if second is None else [first, second]
            skip = self.cfg.walk == "published" and second is not None and second.accepted
            self.pos += 2 if skip else 1
        for key in [k for k in verdicts if k[0] < self.pos]:  # evaluated, skipped by the walk
            del verdicts[key]
        return out


Progress = Callable[[int], None]  # told how many more candidates were evaluated


def ordered_candidates(views: Iterable[View], cfg: MineConfig, chunk: int = CHUNK,
                       progress: Progress | None = None) -> Iterator[Candidate]:
    walk = OrderedWalk(cfg)
    verdicts: Verdicts = {}
    count = 0
    for new, last, final in ordered_verdicts(views, cfg, chunk=chunk, progress=progress):
        count = last + 1
        verdicts.update(new)
        if final:
            break
        yield from walk.advance(verdicts, last, final=False)
    if count < 2:
        raise FrameError(f"fewer than 2 usable frames ({count})")
    yield from walk.advance(verdicts, count - 1, final=True)


def ordered_verdicts(views: Iterable[View], cfg: MineConfig, start: int = 0,
                     stop: int | None = None, chunk: int = CHUNK,
                     progress: Progress | None = None) -> Iterator[tuple[Verdicts, int, bool]]:
    """The verdicts of (i, i+1) for start <= i < stop, and of the (i, i+2) the walk may need
    for those i, over ``views`` (positions start, start + 1, ...: through stop + 1 at most).
    Evaluated in rounds of ``chunk`` positions; yields (the round's verdicts, the last position
    seen, whether it is the final round) per round, the final one last (possibly empty)."""
    window: list[View] = []  # the views still needed, window[k] at position first_pos + k
    first_pos = start  # stream position of window[0]
    next_first = start  # next position i whose (i, i+1) is due
    waiting: list[int] = []  # positions i with (i, i+1) too similar, (i, i+2) due
    for view in views:
        window.append(view)
        if len(window) >= chunk + 2:
            last = first_pos + len(window) - 1
            yield _evaluate_round(window, first_pos, next_first, stop, waiting, cfg,
                                  progress), last, False
            next_first = last
            window = window[-2:]
            first_pos = last - 1
    last = first_pos + len(window) - 1
    yield _evaluate_round(window, first_pos, next_first, stop, waiting, cfg, progress), last, True


def _evaluate_round(window: list[View], first_pos: int, next_first: int, stop: int | None,
                    waiting: list[int], cfg: MineConfig, progress: Progress | None) -> Verdicts:
    """Verdicts of (i, i+1) for i in [next_first, min(last, stop)) and of the due (i, i+2);
    updates ``waiting``."""
    verdicts: Verdicts = {}
    last = first_pos + len(window) - 1
    at = lambda pos: window[pos - first_pos]  # noqa: E731
    firsts = range(next_first, last if stop is None else min(last, stop))
    for i, c in zip(firsts, evaluate([(at(i), at(i + 1)) for i in firsts], cfg)):
        verdicts[(i, i + 1)] = c
        if needs_second(c, cfg):
            waiting.append(i)
    due = [i for i in waiting if i + 2 <= last]
    waiting[:] = [i for i in waiting if i + 2 > last]
    for i, c in zip(due, evaluate([(at(i), at(i + 2)) for i in due], cfg)):
        verdicts[(i, i + 2)] = c
    if progress is not None and len(firsts):
        progress(len(firsts))
    return verdicts


def group_candidates(views: list[View], cfg: MineConfig,
                     progress: Progress | None = None) -> list[Candidate]:
    """Every pair i < j, evaluated GROUP_BATCH pairs at a time (so progress moves; verdicts do
    not depend on the batch)."""
    if len(views) < 2:
        raise FrameError(f"fewer than 2 usable images ({len(views)})")
    pairs = [(views[i], views[j]) for i in range(len(views)) for j in range(i + 1, len(views))]
    out = []
    for s in range(0, len(pairs), GROUP_BATCH):
        out += evaluate(pairs[s : s + GROUP_BATCH], cfg)
        if progress is not None:
            progress(len(pairs[s : s + GROUP_BATCH]))
    if cfg.group_keep == "best":
        kept = [c for c in out if c.reason == ACCEPTED]
        if kept:
            best = min(kept, key=lambda c: c.overlap)  # min keeps the first on ties
            for c in kept:
                if c is not best:
                    c.reason = NOT_BEST
    return out


Loader = Callable[[list[tuple[int, str]], list[dict]], list[View]]


def list_candidates(rows: list[tuple[str, str]], load: Loader, cfg: MineConfig,
                    errors: list[dict], chunk: int = 256, cache_size: int = 512,
                    progress: Progress | None = None) -> Iterator[Candidate]:
    """rows: (path1, path2). A path's frame index is its position in first-appearance order.
    load((index, path) files, errors) -> the views of those that could be used (one call per
    chunk of rows for the paths not cached: SIFT is batched across them), appending
    {input, error} for the others."""
    number: dict[str, int] = {}
    for a, b in rows:
        for p in (a, b):
            number.setdefault(p, len(number))
    cache: OrderedDict[str, View | None] = OrderedDict()  # None: the path cannot be used
    failed: set[str] = set()

    def views_of(paths: list[str]) -> dict[str, View | None]:
        found = {p: cache[p] for p in paths if p in cache}
        new = [p for p in paths if p not in found]
        problems: list[dict] = []
        loaded = {v.path: v for v in load([(number[p], p) for p in new], problems)}
        for e in problems:
            if e["input"] not in failed:
                failed.add(e["input"])
                errors.append(e)
        found.update((p, loaded.get(p)) for p in new)
        for p in paths:  # most recently used last
            cache[p] = found[p]
            cache.move_to_end(p)
        while len(cache) > cache_size:
            cache.popitem(last=False)
        return found

    seen: set[tuple[int, int]] = set()
    for s in range(0, len(rows), chunk):
        part = rows[s : s + chunk]
        views = views_of(list(dict.fromkeys(p for row in part for p in row)))
        batch, skipped = [], []
        for a, b in part:
            v1, v2 = views[a], views[b]
            key = (number[a], number[b])
            if v1 is None or v2 is None or key in seen:
                skipped.append(_placeholder(v1, v2, FRAME_ERROR if key not in seen else DUPLICATE))
                continue
            seen.add(key)
            batch.append((v1, v2))
        yield from skipped
        yield from evaluate(batch, cfg)
        if progress is not None:
            progress(len(part))


def _placeholder(v1: View | None, v2: View | None, reason: str) -> Candidate:
    c = Candidate(v1, v2)  # type: ignore[arg-type]
    c.reason = reason
    return c
