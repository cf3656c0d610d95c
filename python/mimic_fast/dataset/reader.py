"""Reading the pair dataset (format: :mod:`mimic_fast.dataset.schema`).

One tar scanner, :func:`iter_members`, serves every reader: the training index
(:class:`mimic_fast.data.index.ShardIndex`, headers only), the streaming reader
(:func:`iter_tar_pairs`), ``pack``, ``show``, ``stats``, ``export-mimic`` and ``verify``.
Python's tarfile ends its member loop silently at a damaged header or at the end of a file
cut between two members; the scanner tells those apart from a proper end-of-archive marker
and raises :class:`~mimic_fast.dataset.errors.DamagedData` after the members it could read.
What the writer recorded (:func:`read_records`: member counts, sizes, sha256 of shards and
samples, from index.jsonl) is checked by the readers that have it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

from mimic_fast.dataset.errors import DamagedData, DataError
from mimic_fast.dataset.schema import (
    CONFIG, INDEX, META_EXT, SAMPLE_HASH_FIELD, SUMMARY, check_member_key, manifest_path,
    split_key, view_of,
)

log = logging.getLogger(__name__)


# --- the tar scanner ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Member:
    key: str
    ext: str
    offset: int  # of its data in the file
    size: int
    data: bytes | None  # None when scanning headers only


class _CheckedTarInfo(tarfile.TarInfo):
    """Records on the TarFile why its member loop ended (tarfile itself does not say)."""

    @classmethod
    def fromtarfile(cls, tar):
        try:
            return super().fromtarfile(tar)
        except tarfile.EOFHeaderError:
            tar._scan_end = None  # a zero block: the end-of-archive marker
            raise
        except tarfile.HeaderError as exc:
            tar._scan_end = exc
            raise


def _end_problem(end, offset: int) -> str | None:
    if end is None:
        return None
    if isinstance(end, tarfile.EmptyHeaderError):
        return (f"ends at byte {offset} without the tar end-of-archive marker (truncated at a "
                "member boundary)")
    if isinstance(end, tarfile.TruncatedHeaderError):
        return f"is truncated inside the tar header at byte {offset}"
    if isinstance(end, tarfile.InvalidHeaderError):
        return f"has a damaged tar header at byte {offset} ({end})"
    return f"has a bad tar header at byte {offset} ({end})"


def iter_members(source: str | Path | BinaryIO, name: str | None = None,
                 read: bool = True) -> Iterator[Member]:
    """Every regular-file member of a tar, in order. ``source``: a path or a binary file
    object (read sequentially, e.g. a network stream); ``read=False`` scans the headers of a
    local file only (seeking over the data). Raises DamagedData, after the members it could
    read, when the tar does not end with its end-of-archive marker (damaged header,
    truncated file) or a member's data runs past the end of the file."""
    name = str(name if name is not None else source)
    own = isinstance(source, (str, Path))
    try:
        f = open(source, "rb") if own else source
    except OSError as exc:
        raise DataError(f"cannot open shard {name}: {exc}") from None
    file_size = None
    if own and not read:
        file_size = Path(source).stat().st_size
    try:
        with tarfile.open(fileobj=f, mode="r:" if not read else "r|",
                          tarinfo=_CheckedTarInfo) as tar:
            for m in tar:
                if not m.isfile():
                    continue
                key, ext = split_key(m.name)
                if file_size is not None and m.offset_data + m.size > file_size:
                    raise DamagedData(f"shard {name} is truncated: member {m.name} ends at byte "
                                      f"{m.offset_data + m.size}, the file has {file_size}")
                data = None
                if read:
                    data = tar.extractfile(m).read()
                    if len(data) != m.size:
                        raise DamagedData(f"shard {name} is truncated in member {m.name}")
                yield Member(key, ext, m.offset_data, m.size, data)
            problem = _end_problem(getattr(tar, "_scan_end", None), tar.offset)
    except (tarfile.TarError, EOFError) as exc:
        raise DamagedData(f"shard {name} is not a readable tar file: {exc}") from None
    finally:
        if own:
            f.close()
    if problem:
        raise DamagedData(f"shard {name} {problem}")


def iter_shard_samples(source: str | Path | BinaryIO, name: str | None = None,
                       read: bool = True) -> Iterator[tuple[str, list[Member]]]:
    """(key, its members in tar order) for each sample: consecutive members sharing a key.
    On damage, the sample read last is yielded before DamagedData propagates."""
    current, members = None, []
    try:
        for m in iter_members(source, name, read):
            if m.key != current:
                if current is not None:
                    yield current, members
                current, members = m.key, []
            members.append(m)
    except DataError:
        if current is not None:
            yield current, members
        raise
    if current is not None:
        yield current, members


def sample_sha256(payloads) -> str:
    """A sample's hash as the index records it: sha256 of its members' bytes in tar order."""
    h = hashlib.sha256()
    for data in payloads:
        h.update(data)
    return h.hexdigest()


# --- what the writer recorded ------------------------------------------------------------------
@dataclass
class ShardRecord:
    """A shard as index.jsonl describes it: its pairs (key -> sample sha256, or None when
    not recorded), and the shard's member count, size and sha256 (None when not recorded:
    a dataset written before integrity records)."""

    name: str
    pairs: dict[str, str | None] = field(default_factory=dict)
    members: int | None = None
    bytes: int | None = None
    sha256: str | None = None

    @property
    def hashed(self) -> bool:
        return self.sha256 is not None


def read_index(dataset: str | Path) -> list[dict]:
    path = Path(dataset) / INDEX
    if not path.is_file():
        raise FileNotFoundError(f"{dataset} is not a mined dataset (no index.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def read_summary(dataset: str | Path) -> dict:
    return json.loads((Path(dataset) / SUMMARY).read_text())


def read_config(dataset: str | Path) -> dict:
    """config.json: the format, the mining settings, the inputs and the sources."""
    return json.loads((Path(dataset) / CONFIG).read_text())


def read_manifest(dataset: str | Path, index: int) -> dict | None:
    """The manifest of source ``index`` (counts, pairs, candidate overlaps, errors, seconds),
    or None when that source has not landed."""
    try:
        return json.loads(manifest_path(Path(dataset), index).read_text())
    except FileNotFoundError:
        return None


def read_records(dataset: str | Path, text: str | None = None) -> dict[str, ShardRecord] | None:
    """{shard name: ShardRecord} from a dataset's index.jsonl, in index order (None when the
    folder has no index.jsonl). ``text``: the index's content when already read."""
    path = Path(dataset) / INDEX
    if text is None:
        if not path.is_file():
            return None
        text = path.read_text()
    records: dict[str, ShardRecord] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            shard = Path(row["shard"]).name
            key = row["key"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path} line {n} is not an index row: {exc}") from None
        rec = records.get(shard)
        if rec is None:
            rec = records[shard] = ShardRecord(shard, members=row.get("shard_members"),
                                               bytes=row.get("shard_bytes"),
                                               sha256=row.get("shard_sha256"))
        rec.pairs[key] = row.get(SAMPLE_HASH_FIELD)
    return records


# --- samples -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairSample:
    key: str
    view1: np.ndarray  # [h, w, 3] uint8 RGB (0.jpg)
    view2: np.ndarray  # (1.jpg)
    meta: dict  # the sample's json
    jpeg1: bytes
    jpeg2: bytes


def decode_jpeg(data: bytes) -> np.ndarray:
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("cannot decode a stored JPEG")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_sample(dataset: str | Path, key: str) -> PairSample:
    """The sample ``key`` (KeyError naming it if the index has no such key; DamagedData
    when its bytes differ from what the index recorded)."""
    rows = [r for r in read_index(dataset) if r["key"] == key]
    if not rows:
        raise KeyError(f"no pair with key {key!r} in {dataset}")
    check_member_key(key)
    shard = Path(dataset) / rows[0]["shard"]
    for k, members in iter_shard_samples(shard):
        if k == key:
            return _sample(shard, key, members, rows[0].get(SAMPLE_HASH_FIELD))
    raise KeyError(f"{key} missing from {shard}")


def iter_samples(dataset: str | Path) -> Iterator[PairSample]:
    """Every sample, in index order (shard by shard); DamagedData for a shard or sample
    that differs from what the index recorded."""
    rows = read_index(dataset)
    by_shard: dict[str, dict[str, str | None]] = {}
    for r in rows:
        by_shard.setdefault(r["shard"], {})[r["key"]] = r.get(SAMPLE_HASH_FIELD)
    for shard, hashes in by_shard.items():
        path = Path(dataset) / shard
        found = dict(iter_shard_samples(path))
        for key, sha in hashes.items():
            check_member_key(key)
            if key not in found:
                raise KeyError(f"{key} missing from {path}")
            yield _sample(path, key, found[key], sha)


def _sample(shard: Path, key: str, members: list[Member], sha256: str | None) -> PairSample:
    if sha256 is not None and sample_sha256(m.data for m in members) != sha256:
        raise DamagedData(f"shard {shard}: pair {key} does not match its recorded sha256")
    by_ext = {m.ext: m.data for m in members}
    for ext in ("0.jpg", "1.jpg", META_EXT):
        if ext not in by_ext:
            raise KeyError(f"{key}.{ext} missing from {shard}")
    j1, j2 = by_ext["0.jpg"], by_ext["1.jpg"]
    meta = json.loads(by_ext[META_EXT])
    return PairSample(key, decode_jpeg(j1), decode_jpeg(j2), meta, j1, j2)


# --- the streaming reader ----------------------------------------------------------------------
def open_url(url: str) -> BinaryIO:
    """A local path (``file://`` allowed) or an fsspec URL, opened for reading."""
    from mimic_fast.dataset.paths import is_url

    try:
        if is_url(url):
            import fsspec

            return fsspec.open(url, "rb").open()
        return open(url.removeprefix("file://"), "rb")
    except (OSError, ValueError, ImportError) as exc:
        raise DataError(f"cannot open shard {url}: {exc}") from None


def iter_tar_pairs(url: str, record: ShardRecord | None = None, strict: bool = False):
    """(key, (bytes view 0, bytes view 1)) for every complete sample of one tar shard, read
    as a stream. With the shard's ``record``: a recorded pair whose bytes do not match its
    sha256, or that lacks a view, gives (key, None) and a warning (DamagedData with
    ``strict``); pairs lost to a damaged or truncated shard raise DamagedData at the end
    with ``lost`` = how many recorded pairs were not read (damage after the last recorded
    pair, e.g. a shard cut just before its end-of-archive marker, only warns)."""
    seen = 0  # recorded pairs met (read or damaged)
    met: set[str] = set()
    members = 0
    f = open_url(url)
    try:
        with f:
            for key, ms in iter_shard_samples(f, url):
                members += len(ms)
                views = [None, None]
                for m in ms:
                    v = view_of(m.ext)
                    if v is not None:
                        views[v] = m.data
                if record is not None and (key not in record.pairs or key in met):
                    # an extra or repeated sample: its bytes were never recorded, so they are
                    # not trained on (the member count then flags the shard)
                    log.warning("shard %s: sample %s is %s its index; skipped", url, key,
                                "repeated in" if key in met else "not in")
                    continue
                expected = record.pairs.get(key, False) if record is not None else False
                if expected is not False:
                    seen += 1
                    met.add(key)
                    why = None
                    if views[0] is None or views[1] is None:
                        why = "lacks a view"
                    elif expected is not None and sample_sha256(m.data for m in ms) != expected:
                        why = "does not match its recorded sha256"
                    if why:
                        msg = f"shard {url}: pair {key} {why} (damaged)"
                        if strict:
                            raise DamagedData(msg, lost=1)
                        log.warning("%s; skipped", msg)
                        yield key, None
                        continue
                if views[0] is not None and views[1] is not None:
                    yield key, (views[0], views[1])
    except DamagedData as exc:
        if record is not None and exc.lost is None:
            exc.lost = len(record.pairs) - seen
            if exc.lost == 0 and not strict:  # e.g. only the end-of-archive marker is gone
                log.warning("%s; all %d of its recorded pairs were read", exc, seen)
                return
            exc.lost = max(1, exc.lost)
        raise
    if record is not None and record.members is not None and members != record.members:
        raise DamagedData(f"shard {url} holds {members} tar members, its index records "
                          f"{record.members}", lost=max(1, len(record.pairs) - seen))
    if record is not None and seen < len(record.pairs):
        raise DamagedData(f"shard {url} lacks {len(record.pairs) - seen} of the "
                          f"{len(record.pairs)} pairs its index lists",
                          lost=len(record.pairs) - seen)
