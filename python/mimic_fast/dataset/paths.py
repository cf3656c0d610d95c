"""What a data path is: the one place that decides.

* ``"urls"``: an fsspec URL (s3://, gs://, http://, ... but not file://) or a brace pattern
  (``pairs-{000000..000099}.tar``): shards to stream;
* ``"csv"``: a ``.csv`` of the published layout, or a folder holding exactly one ``.csv``
  and no ``*.tar``;
* ``"tar"``: one local ``.tar`` shard;
* ``"shards"``: a local folder of ``*.tar`` shards (a mined dataset: only the shards its
  index.jsonl lists).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from mimic_fast.dataset.errors import DataError
from mimic_fast.dataset.reader import ShardRecord, read_records

log = logging.getLogger(__name__)

KINDS = ("shards", "tar", "csv", "urls")


def is_url(path: str | Path) -> bool:
    return "://" in str(path) and not str(path).startswith("file://")


@dataclass(frozen=True)
class DataPath:
    kind: str  # one of KINDS
    path: str  # as given ("file://" removed)

    @property
    def local(self) -> Path:
        return Path(self.path)


def resolve_data_path(path: str | Path) -> DataPath:
    """The kind of ``path`` (see the module docstring); the CSV found in a folder is
    returned as the path. Nothing is checked beyond what deciding needs."""
    p = str(path)
    if is_url(p) or "{" in p:
        return DataPath("urls", p)
    local = Path(p.removeprefix("file://"))
    if local.suffix == ".csv":
        return DataPath("csv", str(local))
    if local.is_dir() and not any(local.glob("*.tar")):
        csvs = sorted(local.glob("*.csv"))
        if len(csvs) == 1:
            return DataPath("csv", str(csvs[0]))
    if local.suffix == ".tar" and local.is_file():
        return DataPath("tar", str(local))
    return DataPath("shards", str(local))


def list_shards(folder: str | Path,
                records: dict[str, ShardRecord] | None | bool = False) -> list[Path]:
    """The shards of a local folder: every ``*.tar``, sorted by name, or, when the folder has
    an index.jsonl, only the shards it lists (all must exist). ``records``: the folder's
    :func:`~mimic_fast.dataset.reader.read_records` when already read."""
    folder = Path(str(folder).removeprefix("file://"))
    if not folder.exists():
        raise DataError(f"dataset folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"dataset path {folder} is not a folder (expected a folder of *.tar "
                        "shards or a .csv of the published layout)")
    shards = sorted(p for p in folder.iterdir() if p.suffix == ".tar" and p.is_file())
    if records is False:
        records = read_records(folder)
    if records is not None:  # a mined dataset: only the shards its index.jsonl names
        listed = set(records)
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
                        + (" listed in its index.jsonl" if records is not None else ""))
    return shards


def list_stream_urls(path: str) -> list[str]:
    """Shard URLs: brace patterns expanded, a folder (local or remote) -> its sorted *.tar."""
    if "{" in path:
        import braceexpand

        return list(braceexpand.braceexpand(path))
    if path.endswith(".tar"):
        return [path]
    if not is_url(path):
        return [str(p) for p in list_shards(path)]
    import fsspec

    fs, root = fsspec.core.url_to_fs(path)
    try:
        names = sorted(n for n in fs.ls(root, detail=False) if n.endswith(".tar"))
    except (OSError, FileNotFoundError) as exc:
        raise DataError(f"cannot list dataset {path}: {exc}") from None
    if not names:
        raise DataError(f"dataset {path} has no *.tar shards")
    records = stream_records(path)
    if records:  # a mined dataset: exactly the shards its index.jsonl lists, as list_shards
        have = {n.rsplit("/", 1)[-1] for n in names}
        missing = sorted(set(records) - have)
        if missing:
            raise DataError(f"dataset {path} lacks {len(missing)} shard(s) that its "
                            f"index.jsonl lists (e.g. {missing[0]}); the dataset is incomplete")
        stale = [n for n in names if n.rsplit("/", 1)[-1] not in records]
        if stale:
            log.warning("%d *.tar in %s are not in its index.jsonl and are ignored (e.g. %s)",
                        len(stale), path, stale[0])
        names = [n for n in names if n.rsplit("/", 1)[-1] in records]
    protocol = path.split("://", 1)[0]
    return [n if "://" in n else f"{protocol}://{n}" for n in names]


def stream_records(path: str) -> dict[str, ShardRecord]:
    """What the index.jsonl beside streamed shards records ({} when there is none to read:
    a brace pattern, a single .tar, a folder without index.jsonl)."""
    if "{" in path or path.endswith(".tar"):
        return {}
    if not is_url(path):
        return read_records(Path(path.removeprefix("file://"))) or {}
    try:
        import fsspec

        with fsspec.open(path.rstrip("/") + "/index.jsonl", "rt") as f:
            text = f.read()
    except (OSError, FileNotFoundError, ValueError, ImportError):
        return {}
    return read_records(path, text) or {}
