"""Ordered frame folders, unordered image groups and CSV pair lists: the file listings."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import NamedTuple

from mimic_fast.io.images import FrameError, is_image_path, read_regular_file


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name (the frame order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FrameError("no such folder")
    return sorted((p for p in folder.iterdir() if p.is_file() and is_image_path(p)),
                  key=lambda p: p.name)


class PairRow(NamedTuple):
    line: int  # line of the CSV where the row starts (1-based)
    path1: str  # as written: no stripping, newlines inside quotes kept
    path2: str
    error: str | None = None  # why the row is unusable (a missing or blank path), else None


def read_pair_rows(csv_path: str | Path, require_header: bool = False) -> list[PairRow]:
    """Rows of a ``path1,path2`` CSV: the one parser of that format (mining lists, the
    published MIMIC layout, training from a CSV).

    The csv module does the splitting, newlines included (a quoted path may hold one). The
    first non-blank row is a header when two of its cells are ``path1`` and ``path2`` (case
    and surrounding spaces ignored; the columns are then found by name, others ignored);
    otherwise, unless ``require_header``, the first two columns are the paths. Blank rows
    are skipped; a row lacking a path is returned with ``error`` set, for the caller to
    raise or record. FrameError when the file is not a readable regular UTF-8 file, is not
    CSV, or lacks a required header.
    """
    data = read_regular_file(csv_path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FrameError(f"pair list is not UTF-8: {exc}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    rows: list[PairRow] = []
    columns: tuple[int, int] | None = None
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if columns is None:
                names = [c.strip().lower() for c in cells]
                if "path1" in names and "path2" in names:
                    columns = (names.index("path1"), names.index("path2"))
                    continue
                if require_header:
                    raise FrameError(f"line {line}: needs a header with path1,path2, got "
                                     f"{cells!r}")
                columns = (0, 1)
            a, b = (cells[c] if c < len(cells) else "" for c in columns)
            error = None if a.strip() and b.strip() else \
                f"line {line}: expected path1,path2, got {cells!r}"
            rows.append(PairRow(line, a, b, error))
    except csv.Error as exc:
        raise FrameError(f"line {reader.line_num}: not CSV: {exc}") from None
    return rows


def read_pair_list(csv_path: str | Path) -> list[tuple[Path, Path]]:
    """Rows (path1, path2) of a CSV (:func:`read_pair_rows`); relative paths are relative to
    the CSV's folder. A malformed row raises FrameError naming its line."""
    csv_path = Path(csv_path)
    base = csv_path.parent
    rows = []
    for row in read_pair_rows(csv_path):
        if row.error:
            raise FrameError(row.error)
        rows.append((_resolve(base, row.path1), _resolve(base, row.path2)))
    if not rows:
        raise FrameError("pair list has no rows")
    return rows


def _resolve(base: Path, cell: str) -> Path:
    p = Path(cell)
    return p if p.is_absolute() else base / p
