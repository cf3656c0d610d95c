"""show and stats on a real mined dataset: which pair, where the picture goes (the current
directory by default, never the dataset), no overwriting without --force; the demo's
histogram counts the candidates, not the accepted pairs twice."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from mimic_fast.cli import main
from mimic_fast.dataset.reader import read_index, read_summary


def _view_width(png) -> int:
    return Image.open(png).size[0]


def test_show_by_index_random_and_key_named_after_the_key(mined_tum, tmp_path, monkeypatch,
                                                          capsys):
    rows = read_index(mined_tum)
    before = sorted(p.name for p in mined_tum.rglob("*"))

    def show(*args) -> set[str]:  # in a fresh current directory: the files it wrote
        cwd = tmp_path / str(len(list(tmp_path.iterdir())))
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        assert main(["show", str(mined_tum), *args]) == 0
        return {p.name for p in cwd.iterdir()}

    assert show("--index", "2") == {f"{rows[2]['key']}.png"}
    assert f"wrote {rows[2]['key']}.png" in capsys.readouterr().out
    assert show(rows[3]["key"], "--lines", "5") == {f"{rows[3]['key']}.png"}
    assert show() == {f"{rows[0]['key']}.png"}  # no choice: the first pair
    drawn = show("--random")
    n = int(re.search(r"pair (\d+) of (\d+)", capsys.readouterr().out)[1])
    assert drawn == {f"{rows[n]['key']}.png"}
    assert all(_view_width(p) >= 2 * 448 for p in tmp_path.glob("*/*.png"))
    assert sorted(p.name for p in mined_tum.rglob("*")) == before  # nothing in the dataset


def test_show_never_overwrites_without_force(mined_tum, tmp_path, capsys):
    out = tmp_path / "mine.png"
    out.write_bytes(b"my own file")
    assert main(["show", str(mined_tum), "--index", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists; use --force" in err
    assert out.read_bytes() == b"my own file"
    assert main(["show", str(mined_tum), "--index", "0", "--out", str(out), "--force"]) == 0
    assert _view_width(out) >= 2 * 448
    key = read_index(mined_tum)[0]["key"]  # --out a folder: KEY.png in it, not replaced
    assert main(["show", str(mined_tum), "--index", "0", "--out", str(tmp_path)]) == 0
    assert main(["show", str(mined_tum), "--index", "0", "--out", str(tmp_path)]) == 2
    assert f"{key}.png exists" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--index", "999"], "--index 999 is out of range"),
    (["--index", "-1"], "--index -1 is out of range"),
    (["no-such-key"], "no pair with key 'no-such-key'"),
])
def test_show_refuses_a_pair_that_is_not_there(mined_tum, tmp_path, capsys, args, message):
    assert main(["show", str(mined_tum), *args, "--out", str(tmp_path / "p.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not (tmp_path / "p.png").exists()


def test_show_key_and_index_together_is_a_usage_error(mined_tum, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["show", str(mined_tum), "some-key", "--index", "1"])
    assert exit_.value.code == 2 and "not allowed with" in capsys.readouterr().err


def test_stats_writes_to_the_current_directory_and_never_overwrites(mined_tum, tmp_path,
                                                                    monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["stats", str(mined_tum)]) == 0
    text = capsys.readouterr().out
    png = tmp_path / f"{mined_tum.name}-stats.png"
    assert re.search(rf"accepted pairs\s+{len(read_index(mined_tum))}\n", text)
    assert f"wrote {png.name}" in text
    assert not list(mined_tum.glob("*.png"))
    w, h = Image.open(png).size
    assert w >= 900 and h >= 300  # two panels: histogram and rejection reasons
    first = png.read_bytes()
    assert main(["stats", str(mined_tum)]) == 2
    assert "exists; use --force" in capsys.readouterr().err and png.read_bytes() == first
    assert main(["stats", str(mined_tum), "--force"]) == 0
    (tmp_path / "plots").mkdir()  # --out a folder: the default name in it
    assert main(["stats", str(mined_tum), "--out", "plots"]) == 0
    assert (tmp_path / "plots" / png.name).is_file()


def test_demo_histogram_counts_the_candidates(tmp_path, monkeypatch):
    """The demo passed the accepted overlaps as both arguments (its legend counted the
    accepted pairs as candidates)."""
    import mimic_fast.viz.histogram as histogram
    from mimic_fast.demo import mine_sample

    calls = []
    draw = histogram.overlap_histogram

    def recording(candidates, accepted, path, *args, **kwargs):
        calls.append((np.asarray(candidates), np.asarray(accepted), kwargs))
        return draw(candidates, accepted, path, *args, **kwargs)

    monkeypatch.setattr(histogram, "overlap_histogram", recording)
    summary = mine_sample(tmp_path, n_frames=16)
    assert (tmp_path / "overlap_hist.png").is_file() and len(calls) == 1
    candidates, accepted, kwargs = calls[0]
    dataset = tmp_path / "dataset"
    manifests = [json.loads(p.read_text()) for p in (dataset / "_done").glob("source-*.json")]
    assert sorted(candidates) == sorted(o for m in manifests for o in m["candidate_overlaps"])
    assert sorted(accepted) == sorted(r["overlap"] for r in read_index(dataset))
    assert len(candidates) > len(accepted) == summary["accepted"]
    assert kwargs.get("rejected") == read_summary(dataset)["rejected"]


def test_show_refuses_a_key_that_is_no_file_name(mined_tum, tmp_path, monkeypatch, capsys):
    """Keys come from index.jsonl, a user file; the default picture is named after one."""
    import shutil

    dataset = tmp_path / "ds"
    shutil.copytree(mined_tum, dataset)
    lines = (dataset / "index.jsonl").read_text().splitlines()
    row = json.loads(lines[0])
    row["key"] = "../escaped"
    (dataset / "index.jsonl").write_text("\n".join([json.dumps(row)] + lines[1:]) + "\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    assert main(["show", str(dataset), "--index", "0"]) == 2
    assert "is not a pair key" in capsys.readouterr().err
    assert not (tmp_path / "escaped.png").exists() and not list((tmp_path / "cwd").iterdir())
