"""mimic-fast report: the page, its pictures and its folder rules; in headless Chromium from
file://: no console message (no exception, no blocked script, no missing picture), the
gallery's thumbnails after the script ran, a pair's metadata on #pair=N, a screenshot; and a
dataset whose paths and errors are HTML is shown as text, never run."""

from __future__ import annotations

import html
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from chromium_tools import load_page
from mimic_fast.cli import main
from mimic_fast.dataset.reader import read_index, read_summary
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine
from mimic_fast.viz.report import ReportError, write_report


class _Elements(HTMLParser):
    """Every start tag of a document: (tag, {attribute: value})."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def find(self, tag: str, **attrs) -> list[dict]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())]


@pytest.fixture(scope="module")
def report(mined_tum, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "r"
    r = write_report(mined_tum, out, per_page=3, lines=4)
    return r


def test_report_page_and_pictures(report, mined_tum):
    n = len(read_index(mined_tum))
    assert report.pairs == report.pictures == n and n >= 7
    folder = report.page.parent
    pictures = sorted(p.name for p in (folder / "pairs").iterdir())
    assert pictures == [f"{k:06d}.jpg" for k in range(n)]
    assert Image.open(folder / "pairs" / pictures[0]).size[0] >= 2 * 448
    assert Image.open(folder / "stats.png").size[0] >= 900
    page = report.page.read_text()
    summary = read_summary(mined_tum)
    for text in ("Summary", "Rejection reasons", "Sources (1)", "Errors (0)",
                 "tum_freiburg_frames", *summary["rejected"]):
        assert text in page, text
    assert not re.search(r"https?://", page)  # nothing fetched from anywhere


def test_report_in_chromium(report, mined_tum, tmp_path):
    rows = read_index(mined_tum)
    shot = tmp_path / "shot.png"
    url = report.page.resolve().as_uri()
    first = load_page(url, tmp_path, screenshot=shot)
    assert first.console == []
    dom = _Elements(first.dom)
    html_tag = dom.find("html")[0]
    assert html_tag.get("data-rendered") == f"page 1 of {-(-len(rows) // 3)}"
    thumbs = dom.find("img", class_="thumb")
    assert len(thumbs) == 3 and all(t.get("data-loaded") == "1" for t in thumbs)
    assert [t["src"] for t in thumbs] == ["pairs/000000.jpg", "pairs/000001.jpg",
                                          "pairs/000002.jpg"]
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[1] == 1280 and pixels.shape[0] >= 1000 and pixels.std() > 20
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 1000  # pictures, not just text

    last = len(rows) - 1  # its pair's metadata on #pair=N (as a click opens it)
    opened = load_page(f"{url}#pair={last}", tmp_path)
    assert opened.console == []
    dom = _Elements(opened.dom)
    assert dom.find("dialog", id="pair-dialog")[0].get("open") == ""
    assert rows[last]["key"] in opened.dom and "H (view 1 -&gt; view 2 px)" in opened.dom
    thumbs = dom.find("img", class_="thumb")  # the gallery went to that pair's page
    assert f"pairs/{last:06d}.jpg" in [t["src"] for t in thumbs]
    assert len(thumbs) == len(rows) - 3 * (len(rows) // 3 - (len(rows) % 3 == 0))


def test_the_console_check_fails_on_a_page_that_throws(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><html><body><p>hi</p>"
                    "<script>document.body.dataset.x = missing.value;</script></body></html>")
    loaded = load_page(page.as_uri(), tmp_path)
    assert any("missing is not defined" in m for m in loaded.console), loaded.console


def test_a_missing_picture_is_reported_on_the_console(report, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(report.page.parent, copy)
    (copy / "pairs" / "000001.jpg").unlink()
    loaded = load_page((copy / "index.html").as_uri(), tmp_path)
    assert any("picture missing: pairs/000001.jpg" in m for m in loaded.console)
    assert len(_Elements(loaded.dom).find("img", class_="thumb")) == 2


NASTY = "<img src=x onerror=console.error(1)>&\"'"


def test_html_in_paths_and_errors_is_shown_as_text(shared_data, tmp_path):
    folder = tmp_path / NASTY
    folder.mkdir()
    for p in sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:6]:
        shutil.copy(p, folder / p.name)
    (folder / "<svg onload=console.error(2)>.png").write_bytes(b"not a png")
    dataset = tmp_path / "ds"
    summary = mine([folder], dataset, MineConfig(), RunOptions(progress=False))
    assert summary["accepted"] > 0 and any("<svg" in e["input"] for e in summary["errors"])
    r = write_report(dataset, tmp_path / "report")
    page = r.page.read_text()
    assert NASTY not in page and "<svg" not in page
    assert html.escape(NASTY) in page
    loaded = load_page(r.page.resolve().as_uri() + "#pair=0", tmp_path)  # metadata open
    assert loaded.console == []  # nothing ran, nothing was blocked
    dom = _Elements(loaded.dom)
    assert not dom.find("img", src="x") and not dom.find("svg")
    assert len(dom.find("img", class_="thumb")) == r.pictures > 0
    assert dom.find("dialog", id="pair-dialog")[0].get("open") == ""
    # the page's text, tables and the pair's metadata alike: the names as they are
    text = html.unescape(re.sub(r"<[^>]*>", " ", loaded.dom.split("<script")[0]))
    assert NASTY in text
    detail = loaded.dom.split('id="pair-detail"')[1].split("</dialog>")[0]
    assert NASTY in html.unescape(re.sub(r"<[^>]*>", " ", detail))


def test_report_folder_rules(report, mined_tum, tmp_path, capsys):
    own = tmp_path / "own"
    own.mkdir()
    (own / "notes.txt").write_text("mine")
    with pytest.raises(ReportError, match="not a mimic-fast report"):
        write_report(mined_tum, own)
    assert sorted(p.name for p in own.iterdir()) == ["notes.txt"]
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    assert main(["report", str(mined_tum), "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a file" in err and a_file.read_text() == "mine"
    again = tmp_path / "again"  # an earlier report is replaced, its extra pictures go
    assert main(["report", str(mined_tum), "--out", str(again), "--max-pairs", "5"]) == 0
    assert "5 of" in capsys.readouterr().out
    assert main(["report", str(mined_tum), "--out", str(again), "--max-pairs", "2"]) == 0
    n = len(read_index(mined_tum))
    assert sorted(p.name for p in (again / "pairs").iterdir()) == [
        "000000.jpg", f"{n - 1:06d}.jpg"]  # evenly spread: the first and the last
    (again / "index.html").unlink()  # as if stopped before the page: taken over
    assert main(["report", str(mined_tum), "--out", str(again), "--max-pairs", "1"]) == 0
    (again / "pairs" / "holiday.jpg").write_bytes(b"mine")  # not a picture of ours: refused
    assert main(["report", str(mined_tum), "--out", str(again)]) == 2
    assert "e.g. pairs" in capsys.readouterr().err
    assert (again / "pairs" / "holiday.jpg").read_bytes() == b"mine"


def test_a_damaged_dataset_is_one_line_naming_verify(mined_tum, tmp_path, capsys):
    dataset = tmp_path / "ds"
    shutil.copytree(mined_tum, dataset)
    shard = dataset / read_index(dataset)[0]["shard"]
    data = bytearray(shard.read_bytes())
    data[5000] ^= 0xFF  # inside the first pair's view 1
    shard.write_bytes(bytes(data))
    assert main(["report", str(dataset), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match its recorded sha256" in err
    assert "mimic-fast verify" in err


def test_report_default_folder_is_in_the_dataset(mined_tum, tmp_path, capsys):
    dataset = tmp_path / "ds"
    shutil.copytree(mined_tum, dataset)
    assert main(["report", str(dataset), "--max-pairs", "1"]) == 0
    assert (dataset / "report" / "index.html").is_file()
    assert "file://" in capsys.readouterr().out
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "not a mined dataset" in capsys.readouterr().err
