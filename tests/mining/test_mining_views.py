"""Views of image files: a file no decoder copes with costs one frame, not its source; a
JPEG decoded at reduced scale still records its full size."""

from __future__ import annotations

import struct
import zlib

import cv2

from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.run import mine
from mimic_fast.mining.views import view_from_file


def _png_claiming(w, h) -> bytes:
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload)))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_costs_one_frame_not_the_source(tmp_path):
    frames, _ = synthetic.camera_path(synthetic.photo("astronaut"), 6, (240, 320), seed=3)
    for kind in ("frames", "group"):
        folder = tmp_path / kind
        synthetic.write_frames(frames, folder)
        bomb = folder / "zz_bomb.png"  # PIL refuses its header (DecompressionBombError)
        bomb.write_bytes(_png_claiming(20000, 20000))
        s = mine([folder], tmp_path / f"ds-{kind}", MineConfig(kind=kind),
                 RunOptions(progress=False))
        assert s["sources_failed"] == 0 and s["accepted"] > 0, s
        assert [e["input"] for e in s["errors"]] == [str(bomb)]
        assert s["errors"][0]["error"].startswith("image too large")
    first, second = sorted((tmp_path / "group").glob("frame-*"))[:2]
    csv = tmp_path / "pairs.csv"
    csv.write_text(f"{bomb},{first}\n{first},{second}\n")
    s = mine([csv], tmp_path / "ds-list", MineConfig(kind="list"), RunOptions(progress=False))
    assert s["sources_failed"] == 0 and s["rejected"].get("frame_error") == 1, s


def test_original_size_is_the_files_not_the_reduced_decode(tmp_path):
    frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 2, (1000, 1600), seed=1)
    p = tmp_path / "big.jpg"
    cv2.imwrite(str(p), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))
    v = view_from_file(p, MineConfig(), 0)  # decoded at 1/4: 250 x 400
    assert v.original_hw == (1000, 1600)
