"""Random access to the pairs of a dataset: an index over tar shards or a published-layout CSV.

A mined dataset folder holds WebDataset shards (every ``*.tar`` in the folder, sorted by name,
or, when the folder has an ``index.jsonl``, only the shards it lists; format:
:mod:`mimic_fast.dataset.schema`). :class:`ShardIndex` scans the tar headers once
(no image is read) with :func:`mimic_fast.dataset.reader.iter_members` and keeps, for every
complete sample (both ``0.jpg`` and ``1.jpg``), the byte range of each member inside its
shard; reading a pair is then one or two ``pread`` calls. Samples missing a view are counted
and left out (a warning says how many).

Integrity (what index.jsonl records, see :mod:`mimic_fast.dataset.schema`): while indexing,
each shard's tar structure (a damaged header or a cut file ends the member list early), its
size and member count, and the pairs it holds are checked against the record: pairs lost to
a damaged shard are left out, counted, and named in a warning per shard (``strict``:
DamagedData instead). When a pair is read, its bytes are checked against its recorded
sha256 (one sha256 of ~50 KB, ~40 us, the first time a process reads the pair; a mismatch
raises DamagedData naming shard and key, which the loader counts as a skipped pair, or
refuses when strict). The indexing result is cached with the index, keyed by the shards'
sizes and mtimes.

The published MIMIC layout (``<dataset>/<scene>/<pair>/0000.jpg, 0001.jpg, corresponding.npy``
plus a CSV with columns path1,path2) is read by :class:`CsvIndex`; relative paths are taken
relative to the CSV's folder.

Both expose ``len()``, ``keys`` and ``read(i) -> (bytes view 0, bytes view 1)``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from pathlib import Path

import numpy as np

from mimic_fast.dataset.errors import DamagedData, DataError
from mimic_fast.dataset.paths import list_shards, list_stream_urls, resolve_data_path
from mimic_fast.dataset.reader import iter_shard_samples, read_records
from mimic_fast.dataset.schema import INDEX, META_EXT, view_of
from mimic_fast.dataset.writer import write_atomic
from mimic_fast.io.frames import read_pair_rows
from mimic_fast.io.images import FrameError, read_regular_file

log = logging.getLogger(__name__)

__all__ = ["CsvIndex", "DataError", "DamagedData", "ShardIndex", "dataset_fingerprint",
           "holdout_rows", "open_index", "split"]


def dataset_fingerprint(path: str | Path) -> str:
    """What identifies a dataset's content wherever it lies: a hash of the names and sizes of
    its shards (a folder or a .tar), of the CSV's bytes (the published layout; its relative
    paths move with it), or of the shard names (URLs: no request per shard). Moving or copying
    a dataset keeps it; adding, removing or rewriting a shard changes it."""
    dp = resolve_data_path(path)
    h = hashlib.sha1()
    if dp.kind == "urls":
        for url in list_stream_urls(dp.path):
            h.update(f"{url.rsplit('/', 1)[-1]}\n".encode())
        return "urls:" + h.hexdigest()[:20]
    if dp.kind == "csv":
        if not dp.local.is_file():
            raise DataError(f"CSV {dp.local} does not exist")
        return "csv:" + hashlib.sha1(dp.local.read_bytes()).hexdigest()[:20]
    shards = [dp.local] if dp.kind == "tar" else list_shards(dp.local)
    for s in shards:
        h.update(f"{s.name}|{s.stat().st_size}\n".encode())
    return "shards:" + h.hexdigest()[:20]


class ShardIndex:
    """Byte ranges of the members of every complete sample in a folder of tar shards, with
    the sha256 recorded for each (when the dataset records one)."""

    MAX_OPEN = 64  # shard descriptors kept open per process (least recently used closed)

    def __init__(self, shards: list[Path], shard_ids: np.ndarray, offsets: np.ndarray,
                 sizes: np.ndarray, keys: list[str], hashes: np.ndarray | None = None,
                 hashed: np.ndarray | None = None, damaged: dict | None = None):
        n = len(keys)
        self.shards = [Path(s) for s in shards]
        self.shard_ids = shard_ids  # int32 [n]
        self.offsets = offsets  # int64 [n, 3]: view 0, view 1, json (data offsets)
        self.sizes = sizes  # int64 [n, 3] (-1: no such member)
        self.keys = keys
        self.hashes = hashes if hashes is not None else np.zeros((n, 32), np.uint8)  # sha256
        self.hashed = hashed if hashed is not None else np.zeros(n, bool)  # [n] recorded?
        self.damaged = damaged or {}  # {shard name: {"problem", "lost", "pairs"}}
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()
        self._verified: np.ndarray | None = None  # [n] bool: sha256 checked in this process

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, folder: str | Path, cache: str | Path | None = None,
              strict: bool = False) -> "ShardIndex":
        """Scan every shard's tar headers (or load ``cache`` when it matches the shards) and
        check them against index.jsonl; damaged shards are reported (see the module
        docstring): a warning each, or DamagedData when ``strict``."""
        folder = Path(str(folder).removeprefix("file://"))
        if folder.suffix == ".tar" and folder.is_file():
            records, shards = None, [folder]
        else:
            records = read_records(folder) if folder.is_dir() else None
            shards = list_shards(folder, records)
        stamp = _stamp(shards, folder / INDEX if records is not None else None)
        if cache is not None and Path(cache).is_file():
            with np.load(cache, allow_pickle=False) as z:
                if str(z["stamp"]) == stamp:
                    index = cls(shards, z["shard_ids"], z["offsets"], z["sizes"], list(z["keys"]),
                                z["hashes"], z["hashed"], json.loads(str(z["damaged"])))
                    index.report(strict)
                    return index
        shard_ids, offsets, sizes, keys, hashes, hashed = [], [], [], [], [], []
        incomplete, damaged = 0, {}
        for sid, shard in enumerate(shards):
            rec = records.get(shard.name) if records else None
            found, members, problem = set(), 0, None
            try:
                for key, ms in iter_shard_samples(shard, read=False):
                    members += len(ms)
                    off, size = [0, 0, 0], [-1, -1, -1]
                    for m in ms:
                        col = view_of(m.ext)
                        col = 2 if col is None and m.ext == META_EXT else col
                        if col is not None:
                            off[col], size[col] = m.offset, m.size
                    if size[0] < 0 or size[1] < 0:
                        incomplete += 1
                        continue
                    if rec is not None and (key not in rec.pairs or key in found):
                        # not what the writer recorded (an extra or repeated sample): unchecked
                        # bytes are never trained on; the member count flags the shard
                        log.warning("shard %s: sample %s is %s its index; left out", shard, key,
                                    "repeated in" if key in found else "not in")
                        continue
                    found.add(key)
                    sha = rec.pairs.get(key) if rec is not None else None
                    shard_ids.append(sid)
                    offsets.append(off)
                    sizes.append(size)
                    keys.append(key)
                    hashes.append(bytes.fromhex(sha) if sha else bytes(32))
                    hashed.append(bool(sha))
            except DamagedData as exc:
                problem = str(exc)
            if rec is not None:
                file_size = shard.stat().st_size
                if problem is None and rec.bytes is not None and file_size != rec.bytes:
                    problem = f"shard {shard} is {file_size} bytes, its index records {rec.bytes}"
                if problem is None and rec.members is not None and members != rec.members:
                    problem = (f"shard {shard} holds {members} tar members, its index records "
                               f"{rec.members}")
                lost = sum(k not in found for k in rec.pairs)
                if lost and problem is None:
                    problem = f"shard {shard} lacks pairs its index lists"
                if problem:
                    damaged[shard.name] = {"problem": problem, "lost": lost,
                                           "pairs": len(rec.pairs)}
            elif problem:
                damaged[shard.name] = {"problem": problem, "lost": None, "pairs": None}
        if incomplete:
            log.warning("%d samples in %s miss a view (0.jpg or 1.jpg) and are left out",
                        incomplete, folder)
        index = cls(shards, np.asarray(shard_ids, np.int32),
                    np.asarray(offsets, np.int64).reshape(-1, 3),
                    np.asarray(sizes, np.int64).reshape(-1, 3), keys,
                    np.frombuffer(b"".join(hashes), np.uint8).reshape(-1, 32).copy(),
                    np.asarray(hashed, bool), damaged)
        if not keys:
            if damaged:
                raise DamagedData(f"dataset {folder} has no readable pairs: "
                                  + "; ".join(index.damage_lines()))
            raise DataError(f"dataset {folder} has no pairs: {len(shards)} shard(s) but no sample "
                            "with both views (0.jpg and 1.jpg)")
        if cache is not None:  # damage included: a strict run refuses a cached index too
            index.save(cache, stamp)
        index.report(strict)
        return index

    def damage_lines(self) -> list[str]:
        """One line per damaged shard: what is wrong and how many pairs it cost."""
        lines = []
        for d in self.damaged.values():
            if d["lost"] is None:
                lost = "the pairs after the damage are lost (how many is not recorded)"
            else:
                lost = f"{d['lost']} of its {d['pairs']} pairs lost"
            lines.append(f"{d['problem']}: {lost}")
        return lines

    def report(self, strict: bool = False) -> None:
        """Warn about each damaged shard (or raise DamagedData naming them when ``strict``)."""
        if not self.damaged:
            return
        if strict:
            raise DamagedData("damaged dataset (strict data): " + "; ".join(self.damage_lines()),
                              lost=self.lost_pairs)
        for line in self.damage_lines():
            log.warning("%s; training goes on without them (strict data refuses)", line)

    @property
    def lost_pairs(self) -> int:
        """Recorded pairs of damaged shards that could not be indexed (unknown ones: 0)."""
        return sum(d["lost"] or 0 for d in self.damaged.values())

    def save(self, path: str | Path, stamp: str | None = None) -> None:
        write_atomic(Path(path), lambda f: np.savez(
            f, stamp=np.asarray(stamp or _stamp(self.shards, None)),
            shard_ids=self.shard_ids, offsets=self.offsets, sizes=self.sizes,
            keys=np.asarray(self.keys), hashes=self.hashes, hashed=self.hashed,
            damaged=np.asarray(json.dumps(self.damaged))))

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def where(self, i: int) -> str:
        return f"{self.shards[self.shard_ids[i]]}:{self.keys[i]}"

    def read(self, i: int) -> tuple[bytes, bytes]:
        sid = int(self.shard_ids[i])
        try:
            fd = self._fd(sid)
            if self.hashed[i] and not (self._verified is not None and self._verified[i]):
                return self._read_checked(fd, i)
            out = []
            for v in range(2):
                size = int(self.sizes[i, v])
                data = os.pread(fd, size, int(self.offsets[i, v]))
                if len(data) != size:
                    raise DamagedData(f"{self.where(i)}: view {v} truncated ({len(data)} of {size} bytes)")
                out.append(data)
        except OSError as exc:
            raise DataError(f"{self.where(i)}: cannot read: {exc}") from None
        return out[0], out[1]

    def _read_checked(self, fd: int, i: int) -> tuple[bytes, bytes]:
        """Both views, from one pread of the sample's members, checked against its sha256
        (once per pair and process: later epochs read the views alone)."""
        parts = sorted((int(o), int(s)) for o, s in zip(self.offsets[i], self.sizes[i]) if s >= 0)
        start, end = parts[0][0], parts[-1][0] + parts[-1][1]
        buf = os.pread(fd, end - start, start)
        if len(buf) != end - start:
            raise DamagedData(f"{self.where(i)}: truncated ({len(buf)} of {end - start} bytes)")
        view = memoryview(buf)
        h = hashlib.sha256()
        for o, s in parts:
            h.update(view[o - start:o - start + s])
        if h.digest() != self.hashes[i].tobytes():
            raise DamagedData(f"{self.where(i)}: bytes do not match the sha256 recorded in "
                              "index.jsonl (damaged shard)")
        if self._verified is None:
            self._verified = np.zeros(len(self.keys), bool)
        self._verified[i] = True
        o0, o1 = int(self.offsets[i, 0]) - start, int(self.offsets[i, 1]) - start
        return buf[o0:o0 + int(self.sizes[i, 0])], buf[o1:o1 + int(self.sizes[i, 1])]

    def _fd(self, sid: int) -> int:
        """An open descriptor of shard ``sid``: at most :attr:`MAX_OPEN` stay open (least
        recently used closed first), so datasets of thousands of shards stay under ulimit -n."""
        if os.getpid() != self._pid:  # a forked worker: its copies of the parent's descriptors
            self.close()  # are closed (pread has no shared offset; closing is per process)
            self._pid = os.getpid()
            self._verified = None  # and it checks what it reads itself
        fd = self._fds.pop(sid, None)
        if fd is None:
            while len(self._fds) >= self.MAX_OPEN:
                os.close(self._fds.pop(next(iter(self._fds))))
            fd = os.open(self.shards[sid], os.O_RDONLY)
        self._fds[sid] = fd  # (re)inserted last: dict order is the LRU order
        return fd

    def close(self) -> None:
        """Close the open shard descriptors (reads reopen them)."""
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self):
        if getattr(self, "_pid", None) == os.getpid():
            self.close()

    def __getstate__(self):  # descriptors do not travel to worker processes
        state = dict(self.__dict__)
        state["_fds"] = {}
        state["_verified"] = None
        return state

    def subset(self, rows: np.ndarray) -> "ShardIndex":
        return ShardIndex(self.shards, self.shard_ids[rows], self.offsets[rows], self.sizes[rows],
                          [self.keys[r] for r in rows], self.hashes[rows], self.hashed[rows],
                          self.damaged)


class CsvIndex:
    """Pairs of the published layout: a CSV with columns path1,path2."""

    def __init__(self, paths: list[tuple[Path, Path]], keys: list[str]):
        self.paths = paths
        self.keys = keys

    @classmethod
    def build(cls, csv_path: str | Path) -> "CsvIndex":
        csv_path = Path(csv_path)
        if not csv_path.is_file():
            raise DataError(f"CSV {csv_path} does not exist")
        root = csv_path.parent
        paths, keys = [], []
        try:
            rows = read_pair_rows(csv_path, require_header=True)
        except FrameError as exc:
            raise DataError(f"CSV {csv_path}: {exc}") from None
        for row in rows:
            if row.error:
                raise DataError(f"CSV {csv_path}: {row.error}")
            paths.append(tuple(root / p for p in (row.path1, row.path2)))  # absolute stays
            keys.append(str(Path(row.path1).parent))
        if not paths:
            raise DataError(f"CSV {csv_path} lists no pairs")
        return cls(paths, keys)

    def __len__(self) -> int:
        return len(self.paths)

    def where(self, i: int) -> str:
        return f"{self.paths[i][0]},{self.paths[i][1]}"

    def read(self, i: int) -> tuple[bytes, bytes]:
        try:  # regular files only: a FIFO would block, /dev/zero fill the memory
            return read_regular_file(self.paths[i][0]), read_regular_file(self.paths[i][1])
        except FrameError as exc:
            raise DataError(f"{self.where(i)}: {exc}") from None

    def subset(self, rows: np.ndarray) -> "CsvIndex":
        return CsvIndex([self.paths[r] for r in rows], [self.keys[r] for r in rows])


def open_index(path: str | Path, cache: str | Path | None = None,
               strict: bool = False) -> ShardIndex | CsvIndex:
    """A folder of shards, one .tar, a .csv file, or a folder holding exactly one .csv and
    no shards (see :func:`mimic_fast.dataset.paths.resolve_data_path`)."""
    dp = resolve_data_path(path)
    if dp.kind == "csv":
        return CsvIndex.build(dp.local)
    if dp.kind == "urls":
        raise DataError(f"{path} is a URL or a pattern of shards: stream it (--streaming)")
    return ShardIndex.build(dp.local, cache, strict)


def holdout_rows(keys: list[str], fraction: float) -> np.ndarray:
    """bool [n]: True for the held-out pairs, chosen by a hash of the key (stable across
    shard order, number of shards and machines)."""
    if fraction <= 0:
        return np.zeros(len(keys), bool)
    limit = int(fraction * 2**32)
    return np.fromiter((zlib.crc32(k.encode()) < limit for k in keys), bool, len(keys))


def split(index, fraction: float, which: str):
    """The "train" or "holdout" part of ``index`` (``which="all"`` returns it unchanged)."""
    if which == "all":
        return index
    held = holdout_rows(index.keys, fraction)
    rows = np.flatnonzero(held if which == "holdout" else ~held)
    if not len(rows):
        raise DataError(f"the {which} split is empty ({len(index)} pairs, holdout={fraction})")
    return index.subset(rows)


def _stamp(shards: list[Path], index: Path | None) -> str:
    h = hashlib.sha1(b"v2")  # v2: members, hashes and damage of the integrity checks
    for s in shards + ([index] if index is not None else []):
        st = s.stat()
        h.update(f"{s.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()
