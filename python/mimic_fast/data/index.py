"""Random access to the pairs of a dataset: an index over tar shards or a published-layout CSV.

A mined dataset folder holds WebDataset shards (every ``*.tar`` in the folder, sorted by name,
or, when the folder has an ``index.jsonl``, only the shards it lists; format:
:mod:`mimic_fast.mining.writer`). :class:`ShardIndex` scans the tar headers once
(no image is read) and keeps, for every complete sample (both ``0.jpg`` and ``1.jpg``), the
byte range of each view inside its shard; reading a pair is then two ``pread`` calls. Samples
missing a view are counted and left out (a warning says how many).

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
import tarfile
import zlib
from pathlib import Path

import numpy as np

from mimic_fast.io.frames import read_pair_rows
from mimic_fast.io.images import FrameError, read_regular_file

log = logging.getLogger(__name__)

VIEW_EXTS = (("0.jpg", "0.jpeg", "0.png"), ("1.jpg", "1.jpeg", "1.png"))


class DataError(RuntimeError):
    """A dataset that cannot be read; the message names the path and what is wrong."""


def is_url(path: str) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


def split_key(name: str) -> tuple[str, str]:
    """WebDataset convention: ``dir/base.ext.ext`` -> (``dir/base``, ``ext.ext``)."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (folder + "/" + stem if folder else stem), (ext if dot else "")


def list_shards(folder: str | Path) -> list[Path]:
    folder = Path(str(folder).removeprefix("file://"))
    if not folder.exists():
        raise DataError(f"dataset folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"dataset path {folder} is not a folder (expected a folder of *.tar "
                        "shards or a .csv of the published layout)")
    shards = sorted(p for p in folder.iterdir() if p.suffix == ".tar" and p.is_file())
    listed = _indexed_shards(folder)
    if listed is not None:  # a mined dataset: only the shards its index.jsonl names
        missing = sorted(listed - {p.name for p in shards})
        if missing:
            raise DataError(f"dataset folder {folder} lacks {len(missing)} shard(s) that its "
                            f"index.jsonl lists (e.g. {missing[0]}); the dataset is incomplete")
        stale = [p.name for p in shards if p.name not in listed]
        if stale:
            log.warning("%d *.tar in %s are not in its index.jsonl and are ignored (e.g. %s)",
                        len(stale), folder, stale[0])
        shards = [p for p in shards if p.name in listed]
    if not shards:
        raise DataError(f"dataset folder {folder} has no *.tar shards"
                        + (" listed in its index.jsonl" if listed is not None else ""))
    return shards


def _indexed_shards(folder: Path) -> set[str] | None:
    """Shard names of a mined dataset's ``index.jsonl`` (None when the folder has none)."""
    path = folder / "index.jsonl"
    if not path.is_file():
        return None
    names = set()
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    names.add(Path(json.loads(line)["shard"]).name)
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataError(f"{path} line {n} is not an index row: {exc}") from None
    return names


def dataset_fingerprint(path: str | Path) -> str:
    """What identifies a dataset's content wherever it lies: a hash of the names and sizes of
    its shards (a folder or a .tar), of the CSV's bytes (the published layout; its relative
    paths move with it), or of the shard names (URLs: no request per shard). Moving or copying
    a dataset keeps it; adding, removing or rewriting a shard changes it."""
    p = str(path)
    h = hashlib.sha1()
    if is_url(p) or "{" in p:
        from mimic_fast.data.loader import list_stream_urls

        for url in list_stream_urls(p):
            h.update(f"{url.rsplit('/', 1)[-1]}\n".encode())
        return "urls:" + h.hexdigest()[:20]
    local = Path(p.removeprefix("file://"))
    if local.is_dir() and not any(local.glob("*.tar")):
        csvs = sorted(local.glob("*.csv"))
        local = csvs[0] if len(csvs) == 1 else local
    if local.suffix == ".csv":
        if not local.is_file():
            raise DataError(f"CSV {local} does not exist")
        return "csv:" + hashlib.sha1(local.read_bytes()).hexdigest()[:20]
    shards = [local] if local.suffix == ".tar" and local.is_file() else list_shards(local)
    for s in shards:
        h.update(f"{s.name}|{s.stat().st_size}\n".encode())
    return "shards:" + h.hexdigest()[:20]


class ShardIndex:
    """Byte ranges of both views of every complete sample in a folder of tar shards."""

    MAX_OPEN = 64  # shard descriptors kept open per process (least recently used closed)

    def __init__(self, shards: list[Path], shard_ids: np.ndarray, offsets: np.ndarray,
                 sizes: np.ndarray, keys: list[str]):
        self.shards = [Path(s) for s in shards]
        self.shard_ids = shard_ids  # int32 [n]
        self.offsets = offsets  # int64 [n, 2]
        self.sizes = sizes  # int64 [n, 2]
        self.keys = keys
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    # --- building ---------------------------------------------------------------------------
    @classmethod
    def build(cls, folder: str | Path, cache: str | Path | None = None) -> "ShardIndex":
        """Scan every shard's tar headers (or load ``cache`` when it matches the shards)."""
        shards = list_shards(folder)
        stamp = _stamp(shards)
        if cache is not None and Path(cache).is_file():
            with np.load(cache, allow_pickle=False) as z:
                if str(z["stamp"]) == stamp:
                    return cls(shards, z["shard_ids"], z["offsets"], z["sizes"], list(z["keys"]))
        shard_ids, offsets, sizes, keys, incomplete = [], [], [], [], 0
        for sid, shard in enumerate(shards):
            for key, views in _scan_tar(shard):
                if views[0] is None or views[1] is None:
                    incomplete += 1
                    continue
                shard_ids.append(sid)
                offsets.append((views[0][0], views[1][0]))
                sizes.append((views[0][1], views[1][1]))
                keys.append(key)
        if incomplete:
            log.warning("%d samples in %s miss a view (0.jpg or 1.jpg) and are left out",
                        incomplete, folder)
        if not keys:
            raise DataError(f"dataset {folder} has no pairs: {len(shards)} shard(s) but no sample "
                            "with both views (0.jpg and 1.jpg)")
        index = cls(shards, np.asarray(shard_ids, np.int32), np.asarray(offsets, np.int64),
                    np.asarray(sizes, np.int64), keys)
        if cache is not None:
            index.save(cache, stamp)
        return index

    def save(self, path: str | Path, stamp: str | None = None) -> None:
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}.npz")
        np.savez(tmp, stamp=np.asarray(stamp or _stamp(self.shards)), shard_ids=self.shard_ids,
                 offsets=self.offsets, sizes=self.sizes, keys=np.asarray(self.keys))
        os.replace(tmp, path)

    # --- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.keys)

    def where(self, i: int) -> str:
        return f"{self.shards[self.shard_ids[i]]}:{self.keys[i]}"

    def read(self, i: int) -> tuple[bytes, bytes]:
        sid = int(self.shard_ids[i])
        out = []
        try:
            fd = self._fd(sid)
            for v in range(2):
                size = int(self.sizes[i, v])
                data = os.pread(fd, size, int(self.offsets[i, v]))
                if len(data) != size:
                    raise DataError(f"{self.where(i)}: view {v} truncated ({len(data)} of {size} bytes)")
                out.append(data)
        except OSError as exc:
            raise DataError(f"{self.where(i)}: cannot read: {exc}") from None
        return out[0], out[1]

    def _fd(self, sid: int) -> int:
        """An open descriptor of shard ``sid``: at most :attr:`MAX_OPEN` stay open (least
        recently used closed first), so datasets of thousands of shards stay under ulimit -n."""
        if os.getpid() != self._pid:  # a forked worker: its copies of the parent's descriptors
            self.close()  # are closed (pread has no shared offset; closing is per process)
            self._pid = os.getpid()
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
        return state

    def subset(self, rows: np.ndarray) -> "ShardIndex":
        return ShardIndex(self.shards, self.shard_ids[rows], self.offsets[rows], self.sizes[rows],
                          [self.keys[r] for r in rows])


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


def open_index(path: str | Path, cache: str | Path | None = None) -> ShardIndex | CsvIndex:
    """A folder of shards, a .csv file, or a folder holding exactly one .csv and no shards."""
    p = Path(str(path).removeprefix("file://"))
    if p.suffix == ".csv":
        return CsvIndex.build(p)
    if p.is_dir() and not any(p.glob("*.tar")):
        csvs = sorted(p.glob("*.csv"))
        if len(csvs) == 1:
            return CsvIndex.build(csvs[0])
    return ShardIndex.build(p, cache)


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


def _stamp(shards: list[Path]) -> str:
    h = hashlib.sha1()
    for s in shards:
        st = s.stat()
        h.update(f"{s.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _scan_tar(shard: Path):
    """Yield (key, [view0 (offset, size) | None, view1 ...]) from the tar headers only."""
    current, views = None, [None, None]
    file_size = shard.stat().st_size
    try:
        with tarfile.open(shard, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.offset_data + member.size > file_size:
                    raise DataError(f"shard {shard} is truncated: member {member.name} ends at byte "
                                    f"{member.offset_data + member.size}, the file has {file_size}")
                key, ext = split_key(member.name)
                if key != current:
                    if current is not None:
                        yield current, views
                    current, views = key, [None, None]
                for v in range(2):
                    if ext.lower() in VIEW_EXTS[v]:
                        views[v] = (member.offset_data, member.size)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"shard {shard} is not a readable tar file: {exc}") from None
    if current is not None:
        yield current, views
