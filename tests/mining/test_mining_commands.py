"""show, stats, export-mimic and import-mimic on a real mined dataset."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
from PIL import Image

from mimic_fast.cli import main
from mimic_fast.dataset.mimic_layout import load_npy_restricted
from mimic_fast.dataset.reader import iter_samples, read_index


@pytest.fixture(scope="module")
def dataset(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("cmd") / "ds"
    rc = main(["mine", str(shared_data / "video/tum_freiburg_frames"), "--out", str(out),
               "--no-progress"])
    assert rc == 0
    return out


def test_show_draws_both_views(dataset, tmp_path, capsys):
    key = read_index(dataset)[0]["key"]
    assert main(["show", str(dataset), key, "--out", str(tmp_path / "p.png")]) == 0
    img = np.asarray(Image.open(tmp_path / "p.png"))
    assert img.shape[1] >= 2 * 448 and img.shape[0] >= 448  # each 224 px view drawn at 2x
    assert main(["show", str(dataset), "no-such-key", "--out", str(tmp_path / "q.png")]) == 2
    assert "no-such-key" in capsys.readouterr().err


def test_stats_prints_counts_and_writes_histogram(dataset, tmp_path, capsys):
    assert main(["stats", str(dataset), "--out", str(tmp_path / "h.png")]) == 0
    text = capsys.readouterr().out
    n = len(read_index(dataset))
    assert re.search(rf"accepted pairs\s+{n}\n", text) and "overlap of accepted pairs" in text
    assert Image.open(tmp_path / "h.png").size[0] > 300


def test_export_then_import_round_trip(dataset, tmp_path):
    exp, imp = tmp_path / "published", tmp_path / "imported"
    assert main(["export-mimic", str(dataset), str(exp)]) == 0
    lines = (exp / "pairs.csv").read_text().splitlines()
    assert lines[0] == "path1,path2" and len(lines) == len(read_index(dataset)) + 1
    p1 = lines[1].split(",")[0]
    d = np.load(exp / p1.replace("0000.jpg", "corresponding.npy"), allow_pickle=True).item()
    assert isinstance(d, dict) and all(isinstance(k, int) for k in d)  # the published format
    assert main(["import-mimic", str(exp), str(imp)]) == 0
    orig = {s.meta["frames"][0]: s for s in iter_samples(dataset)}
    back = list(iter_samples(imp))
    assert len(back) == len(orig)
    by_jpeg = {s.jpeg1: s for s in orig.values()}
    for s in back:
        o = by_jpeg[s.jpeg1]  # bytes copied, not re-encoded
        assert s.jpeg2 == o.jpeg2
        assert s.meta["correspondences"] == o.meta["correspondences"]
        assert s.meta["overlap"] == pytest.approx(o.meta["overlap"], abs=1e-6)
        assert s.meta["H"] is None and s.meta["kind"] == "import"
    summary = json.loads((imp / "summary.json").read_text())
    assert summary["accepted"] == len(back) and summary["errors"] == []


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_import_refuses_code_in_pickles(tmp_path):
    arr = np.empty((), dtype=object)
    arr[()] = {1: _Evil()}
    np.save(tmp_path / "c.npy", arr, allow_pickle=True)
    with pytest.raises(pickle.UnpicklingError, match="builtins.print"):
        load_npy_restricted(tmp_path / "c.npy")
    np.save(tmp_path / "ok.npy", {3: 5, 4: 6}, allow_pickle=True)
    assert load_npy_restricted(tmp_path / "ok.npy").item() == {3: 5, 4: 6}


def test_import_records_bad_pairs(tmp_path):
    scene = tmp_path / "root" / "s" / "0"
    scene.mkdir(parents=True)
    Image.new("RGB", (224, 224), "red").save(scene / "0000.jpg")
    Image.new("RGB", (100, 80), "red").save(scene / "0001.jpg")  # wrong size
    np.save(scene / "corresponding.npy", {0: 0}, allow_pickle=True)
    (tmp_path / "root" / "pairs.csv").write_text("path1,path2\ns/0/0000.jpg,s/0/0001.jpg\n")
    assert main(["import-mimic", str(tmp_path / "root"), str(tmp_path / "out")]) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert s["accepted"] == 0 and "expected 224x224" in s["errors"][0]["error"]


def test_mine_fidelity_options_reach_the_config(shared_data, tmp_path):
    out = tmp_path / "ds"
    frames = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:4]
    folder = tmp_path / "frames"
    folder.mkdir()
    for p in frames:
        (folder / p.name).write_bytes(p.read_bytes())
    rc = main(["mine", str(folder), "--out", str(out), "--no-progress", "--walk", "all",
               "--interpolation", "area", "--no-exact-decode", "--samples", "64",
               "--overlap-sampling", "grid", "--static-fraction", "0.1", "--ransac", "native"])
    assert rc == 0
    mining = json.loads((out / "config.json").read_text())["mining"]
    assert {k: mining[k] for k in ("walk", "interpolation", "exact_decode", "samples",
                                   "overlap_sampling", "static_fraction", "ransac")} == {
        "walk": "all", "interpolation": "area", "exact_decode": False, "samples": 64,
        "overlap_sampling": "grid", "static_fraction": 0.1, "ransac": "native"}
    defaults = tmp_path / "defaults"
    assert main(["mine", str(folder), "--out", str(defaults), "--no-progress"]) == 0
    mining = json.loads((defaults / "config.json").read_text())["mining"]
    assert (mining["walk"], mining["interpolation"], mining["exact_decode"],
            mining["overlap_sampling"], mining["static_fraction"], mining["ransac"]) == (
        "published", "linear", True, "random", 0.0, "opencv")


def test_mine_refuses_at_once_and_creates_nothing(shared_data, tmp_path, capsys):
    frames = str(shared_data / "video/tum_freiburg_frames")
    out = tmp_path / "new"
    assert main(["mine", str(tmp_path / "typo"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no usable input" in err and "typo: no such file" in err
    assert not out.exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert main(["mine", frames, "--out", str(a_file), "--no-progress"]) == 2
    assert "is a file" in capsys.readouterr().err and a_file.read_text() == "mine"
    own = tmp_path / "own"
    own.mkdir()
    (own / "notes.txt").write_text("mine")
    assert main(["mine", frames, "--out", str(own), "--no-progress"]) == 2
    assert "holds no mimic-fast dataset" in capsys.readouterr().err
    assert sorted(p.name for p in own.iterdir()) == ["notes.txt"]  # not even a lock file
