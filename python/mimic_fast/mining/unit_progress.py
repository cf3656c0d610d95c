"""Progress within units of work, for the engines whose units run elsewhere (pool workers,
Ray tasks): a unit's worker reports the candidates evaluated so far (:class:`Reporter`,
throttled), the driver forwards the increase (:class:`Reports`), and nothing is counted twice
when a unit runs again. Under Ray the reports wait in a small actor (:class:`ProgressBox`)
until the driver takes them."""

from __future__ import annotations

import itertools
import time
import uuid
from typing import Callable

OnProgress = Callable[[object, int], None]  # (unit, n more candidates evaluated)


class Reports:
    """The driver's side of progress within units: each submission of a unit gets an id; its
    worker reports (id, attempt, candidates evaluated so far); the increase is forwarded to
    ``on_progress`` while the submission is live. A new attempt of a submission (Ray retried
    the task) or a submission abandoned (its pool broke; the unit runs again) first takes
    back what it had reported, so nothing is counted twice."""

    def __init__(self, on_progress: OnProgress):
        self.on_progress = on_progress
        self.live: dict[int, list] = {}  # id -> [unit, attempt, reported]
        self._ids = itertools.count()

    def start(self, unit) -> int:
        sid = next(self._ids)
        self.live[sid] = [unit, None, 0]
        return sid

    def report(self, sid: int, attempt: str, total: int) -> None:
        entry = self.live.get(sid)
        if entry is None:
            return  # the unit's result came first and settled its count
        unit, current, reported = entry
        if attempt != current:
            self._take_back(entry)
            entry[1] = attempt
        if total > entry[2]:
            self.on_progress(unit, total - entry[2])
            entry[2] = total

    def end(self, sid: int, abandoned: bool = False) -> None:
        entry = self.live.pop(sid, None)
        if abandoned and entry is not None:
            self._take_back(entry)

    def _take_back(self, entry: list) -> None:
        if entry[2]:
            self.on_progress(entry[0], -entry[2])
            entry[2] = 0


class Reporter:
    """A unit's ``progress(n)`` in a worker: sends (attempt, candidates so far) at most every
    ``every`` seconds; what is not sent is settled by the unit's result."""

    def __init__(self, send: Callable[[str, int], None], every: float):
        self.send, self.every = send, every
        self.attempt = uuid.uuid4().hex  # tells a retried Ray task from its first attempt
        self.total = 0
        self.last = time.monotonic()

    def __call__(self, n: int) -> None:
        self.total += n
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            self.send(self.attempt, self.total)


class ProgressBox:
    """A Ray actor that holds the latest progress report of each unit in flight until the
    driver takes them."""

    def __init__(self):
        self._reports: dict = {}

    def add(self, sid: int, attempt: str, total: int) -> None:
        self._reports[sid] = (attempt, total)

    def take(self) -> dict:
        reports, self._reports = self._reports, {}
        return reports
