"""import-mimic and export-mimic on hostile input: every bad pair of an import is recorded and
the import goes on; an export never writes outside its output folder."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safety_tools import time_limit
from shard_tools import write_tar

from mimic_fast.cli import main
from mimic_fast.dataset.reader import iter_samples
from mimic_fast.dataset.mimic_layout import export_mimic


def _jpeg(colour: str, size: int = 224) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _pair(root: Path, name: str, corresponding: bytes | None = None) -> tuple[str, str]:
    folder = root / "s" / name
    folder.mkdir(parents=True)
    (folder / "0000.jpg").write_bytes(_jpeg("red"))
    (folder / "0001.jpg").write_bytes(_jpeg("blue"))
    if corresponding is None:
        np.save(folder / "corresponding.npy", {0: 1, 5: 7}, allow_pickle=True)
    else:
        (folder / "corresponding.npy").write_bytes(corresponding)
    return f"s/{name}/0000.jpg", f"s/{name}/0001.jpg"


def _npy_bytes(obj) -> bytes:
    buf = io.BytesIO()
    np.save(buf, obj, allow_pickle=True)
    return buf.getvalue()


def test_import_records_every_bad_pair_and_goes_on(tmp_path):
    root = tmp_path / "root"
    good = _npy_bytes({0: 1, 5: 7})
    rows = [_pair(root, "good0")]
    bad_npy = {
        "truncated": good[: len(good) - 9],            # EOFError in the unpickler
        "none_key": _npy_bytes({None: 1}),             # TypeError in int()
        "not_npy": b"\x93NUMPY garbage",               # the header parser
        "str_key": _npy_bytes({"a": 1}),          # ValueError in int()
        "ragged": _npy_bytes(np.array([[1, 2], [3]], dtype=object)),
    }
    for name, data in bad_npy.items():
        rows.append(_pair(root, name, data))
    fifo_row = _pair(root, "fifo")
    os.remove(root / "s" / "fifo" / "corresponding.npy")
    os.mkfifo(root / "s" / "fifo" / "corresponding.npy")  # would block a plain open()
    rows.append(fifo_row)
    os.mkfifo(root / "s" / "good0" / "fifo.jpg")
    lines = [",".join(r) for r in rows]
    lines += [
        f"{root / 's/good0/0000.jpg'},s/good0/0001.jpg",  # absolute path (KeyError before)
        "../outside/0000.jpg,s/good0/0001.jpg",           # leaves the root
        "s/good0/0000.jpg",                               # one path only
        "s/good0/fifo.jpg,s/good0/0001.jpg",              # a FIFO as a view
    ]  # (/dev/zero is tested where a regression cannot eat the memory: tests/io)
    lines.append(",".join(_pair(root, "good1")))        # after all the bad ones
    (root / "pairs.csv").write_text("path1,path2\n" + "\n".join(lines) + "\n")

    with time_limit(60):
        assert main(["import-mimic", str(root), str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["accepted"] == 2, summary["errors"]
    errors = [f"{e['input']}: {e['error']}" for e in summary["errors"]]
    assert len(errors) == len(bad_npy) + 1 + 4, errors
    for name in list(bad_npy) + ["fifo"]:
        assert sum(f"s/{name}/corresponding.npy" in e for e in errors) == 1, (name, errors)
    assert sum("not a regular file" in e for e in errors) == 2, errors  # the two FIFOs
    assert sum("absolute path" in e for e in errors) == 1, errors
    assert sum("leaves the dataset folder" in e for e in errors) == 1, errors
    assert sum("expected path1,path2" in e for e in errors) == 1, errors
    assert sum(e["input"].endswith(("line 9", "line 10", "line 11"))
               for e in summary["errors"]) == 3, errors
    # Every candidate is counted: accepted + rejected.
    assert summary["candidates"] == summary["accepted"] + sum(summary["rejected"].values())
    assert summary["candidates"] == len(lines)
    back = list(iter_samples(tmp_path / "out"))
    assert len(back) == 2 and all(s.meta["correspondences"] == [[0, 1], [5, 7]] for s in back)


def _crafted_dataset(folder: Path, key: str, meta: dict) -> Path:
    """A one-pair dataset whose sample has the given key and metadata (as an attacker would
    write it: the shard and index by hand)."""
    folder.mkdir(parents=True)
    write_tar(folder / "pairs-000000.tar", [
        (f"{key}.0.jpg", _jpeg("red")), (f"{key}.1.jpg", _jpeg("blue")),
        (f"{key}.json", json.dumps(meta).encode()),
    ])
    (folder / "index.jsonl").write_text(json.dumps({"key": key, "shard": "pairs-000000.tar"})
                                        + "\n")
    return folder


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


GOOD_KEY = "0123456789abcdef-000003-000004"
GOOD_META = {"source": "/data/clip.mp4", "frames": [3, 4], "correspondences": [[0, 1]]}


@pytest.mark.parametrize("key, meta, message", [
    ("../../..-000000-000001", GOOD_META, "is not a pair key"),            # climbs out
    ("/tmp/evil-000000-000001", GOOD_META, "is not a pair key"),
    (GOOD_KEY, dict(GOOD_META, frames=["../../x", 4]), "do not match its key"),
    (GOOD_KEY, dict(GOOD_META, frames=[3, 5]), "do not match its key"),
    (GOOD_KEY, dict(GOOD_META, source=["/etc"]), "do not match its key"),
    (GOOD_KEY, dict(GOOD_META, correspondences=[[None, 1]]), "correspondences are not"),
])
def test_export_refuses_crafted_samples_and_writes_nothing_outside(tmp_path, key, meta,
                                                                   message):
    dataset = _crafted_dataset(tmp_path / "in" / "ds", key, meta)
    box = tmp_path / "box"          # everything export may touch lies in box/out
    out = box / "a" / "b" / "out"
    out.mkdir(parents=True)
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=message):
        export_mimic(dataset, out)
    assert {p for p in _files(tmp_path) - before if out not in p.parents} == set()
    assert not any(p.is_file() for p in out.rglob("*"))


def test_export_does_not_write_through_symlinks_in_the_output_folder(tmp_path):
    dataset = _crafted_dataset(tmp_path / "ds", GOOD_KEY, GOOD_META)
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "clip-01234567").mkdir(parents=True)
    os.symlink(elsewhere, out / "clip-01234567" / "000003-000004")   # a planted folder link
    with pytest.raises(ValueError, match="leads outside"):
        export_mimic(dataset, out)
    assert list(elsewhere.iterdir()) == []
    other = tmp_path / "other"
    other.mkdir()
    os.rename(out / "clip-01234567", tmp_path / "scene_was")
    os.symlink(other, out / "clip-01234567")                          # a planted scene link
    with pytest.raises(ValueError, match="leads outside"):
        export_mimic(dataset, out)
    assert list(other.iterdir()) == []  # not even the pair folder is made there
    os.remove(out / "clip-01234567")
    os.rename(tmp_path / "scene_was", out / "clip-01234567")
    os.remove(out / "clip-01234567" / "000003-000004")
    (out / "clip-01234567" / "000003-000004").mkdir()
    victim = elsewhere / "victim.txt"
    victim.write_text("keep me")
    os.symlink(victim, out / "clip-01234567" / "000003-000004" / "0000.jpg")  # a file link
    with pytest.raises(ValueError, match="0000.jpg is a symlink; not writing through it"):
        export_mimic(dataset, out)
    assert victim.read_text() == "keep me"


def test_export_of_a_well_formed_sample_still_works(tmp_path):
    dataset = _crafted_dataset(tmp_path / "ds", GOOD_KEY, GOOD_META)
    assert export_mimic(dataset, tmp_path / "out") == 1
    pair = tmp_path / "out" / "clip-01234567" / "000003-000004"
    assert (pair / "0000.jpg").read_bytes() == _jpeg("red")
    assert np.load(pair / "corresponding.npy", allow_pickle=True).item() == {0: 1}
    assert (tmp_path / "out" / "pairs.csv").read_text().splitlines()[1] == \
        "clip-01234567/000003-000004/0000.jpg,clip-01234567/000003-000004/0001.jpg"


def test_import_never_writes_over_a_dataset(mined_tum, tmp_path):
    from mimic_fast.cli import main

    exported = tmp_path / "published"
    assert main(["export-mimic", str(mined_tum), str(exported)]) == 0
    target = tmp_path / "ds"
    assert main(["import-mimic", str(exported), str(target)]) == 0
    before = {p.name: p.read_bytes() for p in target.glob("*") if p.is_file()}
    assert main(["import-mimic", str(exported), str(target)]) == 2  # refused, one line
    assert {p.name: p.read_bytes() for p in target.glob("*") if p.is_file()} == before
