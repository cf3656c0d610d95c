"""Writing the pair dataset (format: :mod:`mimic_fast.dataset.schema`), crash-safe.

Every file is written to a temporary sibling ``.NAME.tmp-PID-RANDOM``, flushed, fsynced and
renamed over ``NAME`` (:func:`write_atomic`, the one helper); the shard writer does the same
for the tar it streams, and records while writing what readers check (member count, size,
sha256 of the shard and of each sample). Training checkpoints keep their own writer
(:func:`mimic_fast.train.checkpoint.write_bytes_atomic`): their temporaries are named by PID
only so that a new run can tell a dead run's leftovers from its own, and they stream
``torch.save`` into the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from pathlib import Path
from typing import BinaryIO, Callable

from mimic_fast._output_folder import temporary_name
from mimic_fast.dataset.schema import INDEX, SHARD_RECORD_FIELDS, SUMMARY, check_member_key


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Make ``path`` hold ``data`` (bytes, or a function that writes into the open binary
    file it is given), all or nothing: written to a temporary sibling, flushed, fsynced,
    renamed over ``path``, and the folder fsynced. On any error the temporary is removed,
    ``path`` keeps its old content, and the error propagates."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, obj) -> None:
    write_atomic(path, (json.dumps(obj, indent=1) + "\n").encode())


class _HashingFile:
    """A write-only file that hashes and counts what goes through it (for tarfile)."""

    def __init__(self, f):
        self._f, self.sha256, self.bytes = f, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.bytes += len(data)
        return self._f.write(data)

    def tell(self) -> int:
        return self.bytes


class ShardWriter:
    """One shard: samples are streamed into a temporary tar, which ``commit`` renames to its
    final name (or deletes, with any stale final shard, if it got no sample); ``abort``
    deletes both too. While writing it records the shard's integrity record
    (:attr:`record`, complete after ``commit``) and each sample's sha256 (returned by
    ``add``).
    """

    def __init__(self, final_path: Path):
        self.final = Path(final_path)
        self.tmp = temporary_name(self.final)
        self._file = open(self.tmp, "wb")
        self._hashing = _HashingFile(self._file)
        self._tar = tarfile.open(fileobj=self._hashing, mode="w", format=tarfile.USTAR_FORMAT)
        self.samples = 0
        self.members = 0
        self.record: dict | None = None  # {"shard_members", "shard_bytes", "shard_sha256"}

    def add(self, key: str, members: dict[str, bytes]) -> str:
        """Append one sample: ``members`` maps extensions ("0.jpg", "json") to bytes, written
        in the given order as ``key.ext``. Returns the sample's sha256 (hex) as the index
        records it: of the members' bytes in that order."""
        check_member_key(key)
        h = hashlib.sha256()
        for ext, data in members.items():
            info = tarfile.TarInfo(f"{key}.{ext}")
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            self._tar.addfile(info, io.BytesIO(data))
            h.update(data)
            self.members += 1
        self.samples += 1
        return h.hexdigest()

    def commit(self) -> str | None:
        """Finish the shard; returns its file name, or None when it holds no sample."""
        self._tar.close()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if self.samples == 0:
            self.tmp.unlink(missing_ok=True)
            self.final.unlink(missing_ok=True)
            return None
        self.record = dict(zip(SHARD_RECORD_FIELDS, (
            self.members, self._hashing.bytes, self._hashing.sha256.hexdigest())))
        os.replace(self.tmp, self.final)
        _fsync_dir(self.final.parent)
        return self.final.name

    def manifest_fields(self) -> dict:
        """The shard record a manifest holds: :attr:`record`, or nulls when no shard landed."""
        return self.record or dict.fromkeys(SHARD_RECORD_FIELDS)

    def abort(self) -> None:
        """Drop the shard of a failed source, and any final shard an earlier run left (a run
        killed between the shard's rename and its manifest): readers of a mined dataset take
        only the shards its index lists, but plain WebDataset users take every pairs-*.tar, so
        none may stay without a "done" manifest."""
        try:
            self._tar.close()
            self._file.close()
        finally:
            self.tmp.unlink(missing_ok=True)
            self.final.unlink(missing_ok=True)


def shard_record(manifest: dict) -> dict:
    """The shard fields of a manifest (empty for a manifest written before them)."""
    return {k: manifest[k] for k in SHARD_RECORD_FIELDS if manifest.get(k) is not None}


def index_lines(rows_and_records) -> bytes:
    """index.jsonl bytes from (rows, shard record) pairs: each row gets its shard's record."""
    lines = [json.dumps(dict(row, **record), separators=(",", ":"))
             for rows, record in rows_and_records for row in rows]
    return ("\n".join(lines) + "\n" if lines else "").encode()


def finalize(out, sources, finished, fresh, input_errors, options, seconds) -> dict:
    """Rebuild index.jsonl and summary.json from the manifests ``finished`` {index: manifest}
    (``fresh``: those this run wrote; ``options``: its RunOptions); returns the summary."""
    out = Path(out)
    manifests = [finished[i] for i in sorted(finished)]
    write_atomic(out / INDEX, index_lines((m["pairs"], shard_record(m)) for m in manifests))
    rejected: Counter = Counter()
    errors = list(input_errors)
    for m in manifests:
        rejected.update(m["rejected"])
        errors.extend(m["errors"])
        if m["status"] == "failed":
            errors.append({"input": m["source"]["path"], "error": m["error"]})
    fresh_candidates = sum(m["candidates"] for m in fresh)
    unusable = [e for e in input_errors if "files" not in e]  # inputs that are no source
    summary = {
        "sources": len(sources) + len(unusable),
        "sources_done": sum(m["status"] == "done" for m in manifests),
        "sources_failed": sum(m["status"] == "failed" for m in manifests) + len(unusable),
        "sources_skipped": len(manifests) - len(fresh),
        "sources_pending": len(sources) - len(manifests),
        "frames": sum(m["frames"] for m in manifests),
        "candidates": sum(m["candidates"] for m in manifests),
        "accepted": sum(m["accepted"] for m in manifests),
        "rejected": dict(sorted(rejected.items())),
        "errors": errors,
        "shards": [m["shard"] for m in manifests if m["shard"]],
        "seconds": round(seconds, 3),
        "candidates_per_second": round(fresh_candidates / seconds, 3) if seconds > 0 else 0.0,
        "engine": options.engine,
        "workers": options.workers,
    }
    write_json_atomic(out / SUMMARY, summary)
    return summary
