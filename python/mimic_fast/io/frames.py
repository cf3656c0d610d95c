"""Ordered frame folders, unordered image groups and CSV pair lists: the file listings."""

from __future__ import annotations

import csv
from pathlib import Path

from mimic_fast.io.images import FrameError, is_image_path


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (the frame order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FrameError("no such folder")
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_path(p)),
                  key=lambda p: p.name)


def read_pair_list(csv_path: str | Path) -> list[tuple[Path, Path]]:
    """Rows (path1, path2) of a CSV; an optional header ``path1,path2`` is skipped; relative
    paths are relative to the CSV's folder. Blank lines are skipped; other malformed rows
    raise FrameError naming the line."""
    csv_path = Path(csv_path)
    base = csv_path.parent
    try:
        text = csv_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FrameError(f"cannot read pair list: {exc}") from None
    rows = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not cells or all(not c for c in cells):
            continue
        if lineno == 1 and [c.lower() for c in cells[:2]] == ["path1", "path2"]:
            continue
        if len(cells) < 2 or not cells[0] or not cells[1]:
            raise FrameError(f"line {lineno}: expected path1,path2, got {row!r}")
        rows.append(tuple(_resolve(base, c) for c in cells[:2]))
    if not rows:
        raise FrameError("pair list has no rows")
    return rows


def _resolve(base: Path, cell: str) -> Path:
    p = Path(cell)
    return p if p.is_absolute() else base / p
