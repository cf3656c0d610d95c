"""Largest sources are handed out first (CSV lists, of unknown work, before all); unreadable
ones sort last instead of failing."""

from __future__ import annotations

from types import SimpleNamespace

from mimic_fast.io.sources import Source
from mimic_fast.mining.schedule import input_bytes, largest_first


def test_input_bytes_counts_a_folders_images_and_a_files_size(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"x" * 300)
    (folder / "b.png").write_bytes(b"x" * 200)
    (folder / "notes.txt").write_bytes(b"x" * 10_000)  # not an image: not read by mining
    (folder / "sub.jpg").mkdir()  # a folder named like an image: not a frame
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 1234)
    assert input_bytes(Source(str(folder), "frames")) == 500
    assert input_bytes(Source(str(folder), "group")) == 500
    assert input_bytes(Source(str(video), "video")) == 1234
    assert input_bytes(Source(str(tmp_path / "gone.mp4"), "video")) == 0
    assert input_bytes(Source(str(video), "list")) == float("inf")  # work unknown: first


def test_largest_first_orders_by_bytes_then_index(tmp_path):
    sizes = [10, 500, 0, 500, 70]
    tasks = []
    for i, n in enumerate(sizes):
        p = tmp_path / f"{i}.mp4"
        if n:
            p.write_bytes(b"x" * n)
        tasks.append(SimpleNamespace(index=i, source=Source(str(p), "video")))
    assert [t.index for t in largest_first(tasks)] == [1, 3, 4, 0, 2]
