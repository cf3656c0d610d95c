"""What ``stats``, ``report`` and the demo read about a mined dataset, in one load: its
summary, config, index rows and per-source manifests (candidate overlaps, counts, seconds).

Everything is read through the format's owner (:mod:`mimic_fast.dataset.reader`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimic_fast.dataset.reader import read_config, read_index, read_manifest, read_summary


@dataclass(frozen=True)
class SourceRow:
    """One source of the dataset as its manifest records it (status "pending": no manifest,
    i.e. not finished by any run)."""

    index: int
    path: str
    kind: str
    status: str  # done | failed | pending
    error: str | None
    frames: int
    candidates: int
    accepted: int
    rejected: dict
    errors: int  # frame-level errors recorded for it
    seconds: float


@dataclass(frozen=True)
class DatasetOverview:
    path: Path
    config: dict
    summary: dict
    rows: list[dict]  # index.jsonl, in order
    sources: list[SourceRow]
    candidate_overlaps: np.ndarray  # of every candidate that got a homography
    low: float  # the keep band the dataset was mined with
    high: float

    @property
    def accepted_overlaps(self) -> np.ndarray:
        return np.array([r["overlap"] for r in self.rows], float)

    @property
    def name(self) -> str:
        return self.path.resolve().name


def load_overview(dataset: str | Path) -> DatasetOverview:
    """Everything above; FileNotFoundError (one line, naming the folder) when ``dataset``
    is not a mined dataset."""
    path = Path(dataset)
    rows = read_index(path)  # FileNotFoundError: "... is not a mined dataset"
    try:
        summary = read_summary(path)
        config = read_config(path)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{path} is not a finished mined dataset (no "
                                f"{Path(exc.filename).name})") from None
    sources, overlaps = [], []
    for s in config.get("sources", []):
        m = read_manifest(path, s["index"])
        if m is None:
            sources.append(SourceRow(s["index"], str(s["path"]), str(s["kind"]), "pending",
                                     None, 0, 0, 0, {}, 0, 0.0))
            continue
        overlaps += m.get("candidate_overlaps", [])
        sources.append(SourceRow(
            s["index"], str(s["path"]), str(s["kind"]), str(m["status"]), m.get("error"),
            int(m["frames"]), int(m["candidates"]), int(m["accepted"]),
            dict(m.get("rejected", {})), len(m.get("errors", [])), float(m.get("seconds", 0))))
    mining = config.get("mining", {})
    return DatasetOverview(path, config, summary, rows, sources, np.array(overlaps, float),
                           float(mining.get("low", 0.5)), float(mining.get("high", 0.75)))

