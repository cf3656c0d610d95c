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
import io
import json
import pickle
import re
import time
from pathlib import Path

import numpy as np

from mimic_fast.io.sources import Source
from mimic_fast.mining.dataset import iter_samples
from mimic_fast.mining.writer import (
    ShardWriter, manifest_path, shard_name, write_bytes_atomic, write_json_atomic,
)

CSV_NAME = "pairs.csv"


def export_mimic(dataset: str | Path, out: str | Path, csv_name: str = CSV_NAME) -> int:
    """Write every pair of ``dataset`` in the published layout under ``out``; returns the
    number of pairs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in iter_samples(dataset):
        m = s.meta
        scene = f"{_slug(Path(m['source']).stem)}-{s.key.split('-')[0][:8]}"
        pair = "-".join(f"{f:06d}" for f in m["frames"])
        folder = out / scene / pair
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "0000.jpg").write_bytes(s.jpeg1)
        (folder / "0001.jpg").write_bytes(s.jpeg2)
        np.save(folder / "corresponding.npy", {int(a): int(b) for a, b in m["correspondences"]},
                allow_pickle=True)
        rows.append((f"{scene}/{pair}/0000.jpg", f"{scene}/{pair}/0001.jpg"))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path1", "path2"])
    writer.writerows(rows)
    write_bytes_atomic(out / csv_name, buf.getvalue().encode())
    return len(rows)


def import_mimic(root: str | Path, out: str | Path, csv_path: str | Path | None = None,
                 size: int = 224, patch_size: int = 16) -> dict:
    """Convert a published-layout dataset into our format; returns the summary. Pairs that
    cannot be used (missing or undecodable file, wrong image size, bad correspondences) are
    recorded in ``errors`` and skipped."""
    from mimic_fast.mining.config import RunOptions
    from mimic_fast.mining.run import finalize

    t0 = time.perf_counter()
    root, out = Path(root).resolve(), Path(out)
    csv_path = Path(csv_path) if csv_path else _find_csv(root)
    scenes: dict[str, list[tuple[str, str]]] = {}
    for p1, p2 in _read_csv(csv_path):
        scenes.setdefault(Path(p1).parts[0], []).append((p1, p2))
    out.mkdir(parents=True, exist_ok=True)
    sources = [Source(str(root / name), "import") for name in sorted(scenes)]
    write_json_atomic(out / "config.json", {
        "format": "mimic-fast-pairs", "format_version": 1, "imported_from": str(root),
        "csv": str(csv_path), "mining": {"size": size, "patch_size": patch_size},
        "sources": [dict(index=i, **s.as_dict()) for i, s in enumerate(sources)],
    })
    finished = {}
    for index, source in enumerate(sources):
        finished[index] = _import_scene(out, index, source, root,
                                        scenes[Path(source.path).name], size, patch_size)
    return finalize(out, sources, finished, list(finished.values()), [],
                    RunOptions(progress=False), time.perf_counter() - t0)


def _import_scene(out, index, source, root, rows, size, patch_size) -> dict:
    from mimic_fast.mining.dataset import decode_jpeg

    P = (size // patch_size) ** 2
    writer = ShardWriter(out / shard_name(index))
    pairs, errors, overlaps = [], [], []
    for k, (p1, p2) in enumerate(rows):
        try:
            b1, b2 = (root / p1).read_bytes(), (root / p2).read_bytes()
            for b, p in ((b1, p1), (b2, p2)):
                h, w = decode_jpeg(b).shape[:2]
                if (h, w) != (size, size):
                    raise ValueError(f"{p} is {w}x{h}, expected {size}x{size}")
            corr = _correspondences(root / Path(p1).parent / "corresponding.npy", P)
        except (OSError, ValueError, pickle.UnpicklingError) as exc:
            errors.append({"input": str(root / p1), "error": str(exc)})
            continue
        frames = [2 * k, 2 * k + 1]
        key = f"{source.id}-{frames[0]:06d}-{frames[1]:06d}"
        overlap = len(corr) / P
        meta = {"key": key, "source": source.path, "kind": "import", "frames": frames,
                "times": None, "paths": [str(root / p1), str(root / p2)],
                "original_size": [[size, size], [size, size]], "image_size": [size, size],
                "patch_size": patch_size, "resize": None, "H": None, "overlap": overlap,
                "counts": None, "correspondences": corr, "inliers": None, "matches": None,
                "keypoints": None}
        writer.add(key, {"0.jpg": b1, "1.jpg": b2,
                         "json": json.dumps(meta, separators=(",", ":")).encode()})
        pairs.append({"key": key, "source": source.path, "kind": "import", "frames": frames,
                      "overlap": overlap, "inliers": None, "matches": None,
                      "shard": shard_name(index)})
        overlaps.append(overlap)
    shard = writer.commit()
    manifest = {"index": index, "source": source.as_dict(), "status": "done", "error": None,
                "shard": shard, "frames": 2 * len(rows), "candidates": len(rows),
                "accepted": len(pairs), "rejected": {"import_error": len(rows) - len(pairs)}
                if len(rows) > len(pairs) else {}, "errors": errors, "pairs": pairs,
                "candidate_overlaps": overlaps, "seconds": 0.0}
    write_json_atomic(manifest_path(out, index), manifest)
    return manifest


def _correspondences(path: Path, P: int) -> list[list[int]]:
    """[[view-1 patch, view-2 patch], ...] sorted, validated one-to-one and in range."""
    obj = load_npy_restricted(path)
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.ndim == 0:
        obj = obj.item()
    if isinstance(obj, dict):
        pairs = [(int(a), int(b)) for a, b in obj.items()]
    else:
        arr = np.asarray(obj)
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{path}: expected a dict or a [K, 2] array")
        pairs = [(int(a), int(b)) for a, b in arr]
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
    admits only numpy arrays, dtypes and scalars (and pickle's built-in containers)."""
    with open(path, "rb") as f:
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


def _read_csv(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"path1", "path2"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: needs a header with path1,path2, got {reader.fieldnames}")
        return [(r["path1"], r["path2"]) for r in reader]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "source"
