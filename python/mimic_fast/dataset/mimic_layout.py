"""Conversion to and from the published MIMIC layout::

    <root>/<scene>/<pair>/0000.jpg       view 1 (224x224)
    <root>/<scene>/<pair>/0001.jpg       view 2
    <root>/<scene>/<pair>/corresponding.npy   np.save of a dict {view-1 patch: view-2 patch}
    <root>/<csv>                          header "path1,path2", paths relative to <root>

Export copies the stored JPEG bytes (no re-encoding). Import groups rows by scene (the first
path component), one source per scene, and writes our dataset format with ``kind`` "import",
``H``, ``counts``, ``inliers``, ``matches`` and ``keypoints`` null (the published layout does
not keep them), ``overlap`` = len(correspondences) / P. corresponding.npy is a pickle; it is
read with an unpickler that only admits numpy arrays, dtypes, scalars and plain containers.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import pickle
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mimic_fast.dataset.reader import decode_jpeg, iter_samples
from mimic_fast.dataset.schema import (
    KEY_PATTERN, config_header, index_row, manifest_path, sample_key, shard_name,
)
from mimic_fast.dataset.writer import ShardWriter, finalize, write_atomic, write_json_atomic
from mimic_fast.io.frames import read_pair_rows
from mimic_fast.io.images import FrameError, checked_image_size, read_regular_file
from mimic_fast._output_folder import FolderLock
from mimic_fast.io.sources import Source

CSV_NAME = "pairs.csv"


def export_mimic(dataset: str | Path, out: str | Path, csv_name: str = CSV_NAME) -> int:
    """Write every pair of ``dataset`` in the published layout under ``out``; returns the
    number of pairs. A sample whose key or metadata is not what the writer makes raises
    ValueError naming it (nothing is written for it, nor outside ``out``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    rows = []
    for s in iter_samples(dataset):
        scene, pair, corr = _export_fields(s)
        folder = out / scene / pair
        # The names above cannot climb; this also catches symlinks already inside out
        # (checked before mkdir, which would follow them).
        if folder.resolve().parent.parent != root:
            raise ValueError(f"sample {s.key!r}: {folder} leads outside {out}")
        folder.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.save(buf, corr, allow_pickle=True)
        for name, data in (("0000.jpg", s.jpeg1), ("0001.jpg", s.jpeg2),
                           ("corresponding.npy", buf.getvalue())):
            _write_new(folder / name, data)
        rows.append((f"{scene}/{pair}/0000.jpg", f"{scene}/{pair}/0001.jpg"))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path1", "path2"])
    writer.writerows(rows)
    write_atomic(out / csv_name, buf.getvalue().encode())
    return len(rows)


def _export_fields(s) -> tuple[str, str, dict[int, int]]:
    """(scene folder, pair folder, {view-1 patch: view-2 patch}) of a sample, from its key
    and metadata checked as read: folder names are made of [A-Za-z0-9_-] only."""
    m = KEY_PATTERN.fullmatch(s.key)
    if m is None:
        raise ValueError(f"sample key {s.key!r} is not a pair key (<16 hex>-<frame>-<frame>)")
    meta = s.meta if isinstance(s.meta, dict) else {}
    source, frames = meta.get("source"), meta.get("frames")
    i, j = int(m[2]), int(m[3])
    if not isinstance(source, str) or frames != [i, j]:
        raise ValueError(f"sample {s.key!r}: metadata source {source!r} / frames {frames!r} do "
                         "not match its key")
    try:
        corr = {_index(a): _index(b) for a, b in meta["correspondences"]}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"sample {s.key!r}: correspondences are not [[int, int], ...]") from None
    return f"{_slug(Path(source).stem)}-{m[1][:8]}", f"{i:06d}-{j:06d}", corr


def _index(x) -> int:
    if isinstance(x, bool) or not isinstance(x, int):
        raise TypeError
    return x


def _write_new(path: Path, data: bytes) -> None:
    # O_NOFOLLOW: a symlink planted at the file's name is refused, not written through.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ValueError(f"{path} is a symlink; not writing through it") from None
        raise
    with open(fd, "wb") as f:
        f.write(data)


def import_mimic(root: str | Path, out: str | Path, csv_path: str | Path | None = None,
                 size: int = 224, patch_size: int = 16) -> dict:
    """Convert a published-layout dataset into our format; returns the summary. Pairs that
    cannot be used (missing or undecodable file, wrong image size, bad correspondences) are
    recorded in ``errors`` and skipped, as are CSV rows that lack a path or whose path is
    absolute or leaves ``root``; the import goes on."""
    t0 = time.perf_counter()
    root, out = Path(root).resolve(), Path(out)
    csv_path = Path(csv_path) if csv_path else _find_csv(root)
    rows, row_errors = _read_csv(csv_path)
    scenes: dict[str, list[tuple[str, str]]] = {}
    for p1, p2 in rows:
        scenes.setdefault(Path(p1).parts[0], []).append((p1, p2))
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out} exists and is not a folder")
    with FolderLock(out):  # one writer per folder; never over a dataset that is there
        if (out / "config.json").exists() or any(out.glob("pairs-*.tar")):
            raise ValueError(f"{out} already holds a dataset; import into a new folder")
        return _import_locked(root, out, csv_path, scenes, row_errors, size, patch_size, t0)


def _import_locked(root, out, csv_path, scenes, row_errors, size, patch_size, t0) -> dict:
    sources = [Source(str(root / name), "import") for name in sorted(scenes)]
    write_json_atomic(out / "config.json", {
        **config_header(), "imported_from": str(root),
        "csv": str(csv_path), "mining": {"size": size, "patch_size": patch_size},
        "sources": [dict(index=i, **s.as_dict()) for i, s in enumerate(sources)],
    })
    finished = {}
    for index, source in enumerate(sources):
        finished[index] = _import_scene(out, index, source, root,
                                        scenes[Path(source.path).name], size, patch_size)
    summary = finalize(out, sources, finished, list(finished.values()), [], _IMPORT_RUN,
                       time.perf_counter() - t0)
    if row_errors:  # rows of no scene: counted as rejected candidates, like the scenes' own
        summary["errors"] = row_errors + summary["errors"]
        summary["candidates"] += len(row_errors)
        rejected = dict(summary["rejected"])
        rejected["import_error"] = rejected.get("import_error", 0) + len(row_errors)
        summary["rejected"] = dict(sorted(rejected.items()))
        write_json_atomic(out / "summary.json", summary)
    return summary


def _import_scene(out, index, source, root, rows, size, patch_size) -> dict:
    P = (size // patch_size) ** 2
    writer = ShardWriter(out / shard_name(index))
    pairs, errors, overlaps = [], [], []
    for k, (p1, p2) in enumerate(rows):
        try:
            b1, b2 = _read_view(root, p1, size), _read_view(root, p2, size)
            corr = _correspondences(root / Path(p1).parent / "corresponding.npy", P)
        except ValueError as exc:  # each names its file
            errors.append({"input": str(root / p1), "error": str(exc)})
            continue
        frames = [2 * k, 2 * k + 1]
        key = sample_key(source.id, frames[0], frames[1])
        overlap = len(corr) / P
        meta = {"key": key, "source": source.path, "kind": "import", "frames": frames,
                "times": None, "paths": [str(root / p1), str(root / p2)],
                "original_size": [[size, size], [size, size]], "image_size": [size, size],
                "patch_size": patch_size, "resize": None, "H": None, "overlap": overlap,
                "counts": None, "correspondences": corr, "inliers": None, "matches": None,
                "keypoints": None}
        sha = writer.add(key, {"0.jpg": b1, "1.jpg": b2,
                               "json": json.dumps(meta, separators=(",", ":")).encode()})
        pairs.append(index_row(meta, shard_name(index), sha))
        overlaps.append(overlap)
    shard = writer.commit()
    manifest = {"index": index, "source": source.as_dict(), "status": "done", "error": None,
                "shard": shard, **writer.manifest_fields(), "frames": 2 * len(rows),
                "candidates": len(rows),
                "accepted": len(pairs), "rejected": {"import_error": len(rows) - len(pairs)}
                if len(rows) > len(pairs) else {}, "errors": errors, "pairs": pairs,
                "candidate_overlaps": overlaps, "seconds": 0.0}
    write_json_atomic(manifest_path(out, index), manifest)
    return manifest


@dataclass(frozen=True)
class _ImportRun:  # the summary's "engine" and "workers" of an import (as mining's defaults)
    engine: str = "local"
    workers: int = 1


_IMPORT_RUN = _ImportRun()


def _read_view(root: Path, p: str, size: int) -> bytes:
    """A view's bytes, checked: a regular file, size x size by its header, decodable."""
    try:
        data = read_regular_file(root / p)
        h, w = checked_image_size(data)
        if (h, w) != (size, size):
            raise ValueError(f"is {w}x{h}, expected {size}x{size}")
        decode_jpeg(data)
    except ValueError as exc:  # FrameError is one
        raise ValueError(f"{p}: {exc}") from None
    return data


def _correspondences(path: Path, P: int) -> list[list[int]]:
    """[[view-1 patch, view-2 patch], ...] sorted, validated one-to-one and in range;
    ValueError naming the file for anything else."""
    try:
        obj = load_npy_restricted(path)
    except FrameError as exc:
        raise ValueError(f"{path}: {exc}") from None
    except Exception as exc:  # a damaged npy or pickle fails in many ways (EOFError,
        # UnpicklingError, ValueError, TypeError, ...); the unpickler never runs its code.
        raise ValueError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0:
        obj = obj.item()
    try:
        if isinstance(obj, dict):
            pairs = [(int(a), int(b)) for a, b in obj.items()]
        else:
            arr = np.asarray(obj)
            if arr.ndim != 2 or arr.shape[1] != 2:
                raise ValueError("expected a dict or a [K, 2] array")
            pairs = [(int(a), int(b)) for a, b in arr]
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{path}: not patch correspondences ({exc})") from None
    pairs.sort()
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    if len(set(a)) != len(a) or len(set(b)) != len(b):
        raise ValueError(f"{path}: correspondences are not one-to-one")
    if any(not 0 <= x < P for x in a + b):
        raise ValueError(f"{path}: patch index outside [0, {P})")
    return [list(p) for p in pairs]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a .npy file")
        return super().find_class(module, name)


def load_npy_restricted(path: str | Path):
    """np.load without arbitrary code execution: object arrays go through an unpickler that
    admits only numpy arrays, dtypes and scalars (and pickle's built-in containers). Only
    a regular file is read (FrameError otherwise)."""
    with io.BytesIO(read_regular_file(path)) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            _, _, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            _, _, dtype = np.lib.format.read_array_header_2_0(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        return _NumpyOnlyUnpickler(f).load()


def _find_csv(root: Path) -> Path:
    found = sorted(root.glob("*.csv"))
    if len(found) != 1:
        raise FileNotFoundError(f"expected exactly one CSV in {root} (use --csv), found "
                                f"{[p.name for p in found]}")
    return found[0]


def _read_csv(path: Path) -> tuple[list[tuple[str, str]], list[dict]]:
    """The usable rows (paths relative to the root and inside it) and an error for each
    other row."""
    try:
        parsed = read_pair_rows(path, require_header=True)
    except FrameError as exc:
        raise ValueError(f"{path}: {exc}") from None
    rows, errors = [], []
    for row in parsed:
        why = row.error or _outside_root(row.path1) or _outside_root(row.path2)
        if why:
            errors.append({"input": f"{path} line {row.line}", "error": why})
        else:
            rows.append((row.path1, row.path2))
    return rows, errors


def _outside_root(p: str) -> str | None:
    """Why a CSV path cannot be used, or None: published paths are relative to the root."""
    if Path(p).is_absolute():
        return f"absolute path {p!r} (paths must be relative to the dataset folder)"
    if ".." in Path(p).parts:
        return f"path {p!r} leaves the dataset folder"
    if not Path(p).parts:  # "." or "./"
        return f"path {p!r} names no file"
    return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "source"
