"""The path1,path2 CSV: one parser (mining lists, training from a CSV, import-mimic), the csv
module's own newline handling, paths kept exactly as written."""

from __future__ import annotations

import pytest

from mimic_fast.data.index import CsvIndex, DataError
from mimic_fast.io.frames import read_pair_list, read_pair_rows
from mimic_fast.io.images import FrameError
from mimic_fast.dataset.mimic_layout import _read_csv

# A quoted newline, edge spaces, a comma inside quotes, CRLF line ends, a blank line, a BOM.
TRICKY = ('\ufeffpath1,path2\r\n"s/new\nline.jpg","s/ edge .jpg "\r\n\r\n'
          's/plain.jpg,"s/comma,in.jpg"\r\n')
EXPECTED = [("s/new\nline.jpg", "s/ edge .jpg "), ("s/plain.jpg", "s/comma,in.jpg")]


def _write(path, text):
    path.write_bytes(text.encode())
    return path


def test_rows_keep_newlines_and_spaces(tmp_path):
    csv_path = _write(tmp_path / "l.csv", TRICKY)
    rows = read_pair_rows(csv_path)
    assert [(r.path1, r.path2) for r in rows] == EXPECTED
    assert [r.line for r in rows] == [2, 5] and all(r.error is None for r in rows)
    assert read_pair_list(csv_path) == [(tmp_path / a, tmp_path / b) for a, b in EXPECTED]


def test_every_reader_of_the_format_reads_the_same_rows(tmp_path):
    csv_path = _write(tmp_path / "l.csv", TRICKY)
    (tmp_path / "s").mkdir()
    for a, b in EXPECTED:
        (tmp_path / a).write_bytes(a.encode())
        (tmp_path / b).write_bytes(b.encode())
    index = CsvIndex.build(csv_path)  # training
    assert index.paths == [(tmp_path / a, tmp_path / b) for a, b in EXPECTED]
    assert index.read(0) == (b"s/new\nline.jpg", b"s/ edge .jpg ")
    assert _read_csv(csv_path) == (EXPECTED, [])  # import-mimic


def test_a_bad_row_is_named_by_the_line_it_starts_on(tmp_path):
    csv_path = _write(tmp_path / "bad.csv", 'path1,path2\n"a\nb.jpg",c.jpg\nonly_one.jpg\n')
    with pytest.raises(FrameError, match=r"line 4: expected path1,path2, got \['only_one.jpg'\]"):
        read_pair_list(csv_path)
    with pytest.raises(DataError, match="line 4: expected path1,path2"):
        CsvIndex.build(csv_path)
    rows, errors = _read_csv(csv_path)
    assert rows == [("a\nb.jpg", "c.jpg")]
    assert errors == [{"input": f"{csv_path} line 4",
                       "error": "line 4: expected path1,path2, got ['only_one.jpg']"}]


def test_header_is_found_by_name_and_required_where_asked(tmp_path):
    csv_path = _write(tmp_path / "h.csv", "id, PATH2 ,path1\n7,b.jpg,a.jpg\n")
    assert [(r.path1, r.path2) for r in read_pair_rows(csv_path)] == [("a.jpg", "b.jpg")]
    headless = _write(tmp_path / "n.csv", "a.jpg,b.jpg\n")
    assert [(r.path1, r.path2) for r in read_pair_rows(headless)] == [("a.jpg", "b.jpg")]
    with pytest.raises(FrameError, match="line 1: needs a header with path1,path2"):
        read_pair_rows(headless, require_header=True)
