"""``mimic-fast verify DIR``: check a whole dataset against what its writer recorded.

For every shard that index.jsonl lists: the file exists, its size and sha256 are the
recorded ones, its tar structure is whole (no damaged header, not truncated), it holds the
recorded number of members, every listed pair is in it with both views, and each pair's
bytes match its sha256; a sample the index does not list is reported too. A dataset
written before integrity records (no hashes in its index) is checked for structure and
presence only, and the summary says "no hashes recorded".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from mimic_fast.dataset.errors import DataError
from mimic_fast.dataset.reader import ShardRecord, iter_shard_samples, read_records, sample_sha256
from mimic_fast.dataset.schema import view_of


@dataclass
class VerifyReport:
    dataset: str
    shards: int = 0
    pairs: int = 0
    hashed_shards: int = 0
    problems: list[str] = field(default_factory=list)  # one line each, naming what is damaged

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: OK with counts, or how much is damaged."""
        if not self.ok:
            return f"DAMAGED: {len(self.problems)} problem(s) in {self.dataset}"
        if self.hashed_shards == self.shards:
            what = "sizes, tar structure, member counts and sha256 of every shard and pair"
        elif self.hashed_shards == 0:
            what = "tar structure and pairs present; no hashes recorded (written before them)"
        else:
            what = (f"sha256 checked for {self.hashed_shards} shard(s); no hashes recorded for "
                    f"{self.shards - self.hashed_shards}")
        return f"OK: {self.dataset}: {self.shards} shards, {self.pairs} pairs ({what})"


def verify(dataset: str | Path) -> VerifyReport:
    """Check every shard and pair of ``dataset`` (see the module docstring)."""
    dataset = Path(dataset)
    records = read_records(dataset)
    if records is None:
        raise DataError(f"{dataset} is not a mined dataset (no index.jsonl)")
    report = VerifyReport(str(dataset))
    for name, rec in records.items():
        report.shards += 1
        report.pairs += len(rec.pairs)
        report.hashed_shards += rec.hashed
        report.problems += _check_shard(dataset / name, rec)
    listed = set(records)
    for p in sorted(dataset.glob("*.tar")):
        if p.name not in listed:
            report.problems.append(f"{p.name}: not listed in index.jsonl (readers ignore it)")
    return report


def _check_shard(path: Path, rec: ShardRecord) -> list[str]:
    name = path.name
    if not path.is_file():
        return [f"{name}: missing ({len(rec.pairs)} pairs listed)"]
    problems = []
    size = path.stat().st_size
    if rec.bytes is not None and size != rec.bytes:
        problems.append(f"{name}: {size} bytes, the index records {rec.bytes}")
    if rec.sha256 is not None and _file_sha256(path) != rec.sha256:
        problems.append(f"{name}: sha256 of the shard differs from the recorded one")
    members, seen = 0, set()
    try:
        for key, ms in iter_shard_samples(path):
            members += len(ms)
            if key not in rec.pairs:
                problems.append(f"{name}: sample {key} is not listed in index.jsonl")
                continue
            seen.add(key)
            if sum(view_of(m.ext) is not None for m in ms) < 2:
                problems.append(f"{name}: pair {key} lacks a view")
            sha = rec.pairs[key]
            if sha is not None and sample_sha256(m.data for m in ms) != sha:
                problems.append(f"{name}: pair {key} does not match its recorded sha256")
    except DataError as exc:
        problems.append(f"{name}: {exc}")
    if rec.members is not None and members != rec.members:
        problems.append(f"{name}: {members} tar members read, the index records {rec.members}")
    missing = [k for k in rec.pairs if k not in seen]
    if missing:
        problems.append(f"{name}: {len(missing)} of {len(rec.pairs)} listed pairs missing "
                        f"(e.g. {missing[0]})")
    return problems


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
