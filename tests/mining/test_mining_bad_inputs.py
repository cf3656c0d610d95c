"""Bad inputs are recorded in summary.json "errors" and skipped; exit 0 unless --strict."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mimic_fast.cli import main
from mimic_fast.mining import synthetic
from video_tools import write_vfr_video  # noqa: E402  (tests/ is on sys.path)


@pytest.fixture(scope="module")
def messy(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("messy")
    frames, _ = synthetic.camera_path(synthetic.photo("astronaut"), 10, (240, 320), seed=4)
    good = synthetic.write_video(frames, root / "videos" / "good.mp4", fps=1.0)
    # the same views at uneven times (0.5 s to 1.5 s apart): sampled by timestamp, mined
    write_vfr_video(root / "videos" / "vfr.mp4", frames,
                    np.cumsum([0.0] + [0.5 + (k % 3) * 0.5 for k in range(len(frames) - 1)]))
    data = good.read_bytes()
    (root / "videos" / "truncated.mp4").write_bytes(data[: len(data) // 3])
    (root / "videos" / "empty.mp4").write_bytes(b"")
    box = (shared_data / "video/opencv_box/box.mp4").read_bytes()
    (root / "videos" / "box_cut.mp4").write_bytes(box[: len(box) // 2])  # index first: opens
    (root / "videos" / "notes.mp4").write_text("not a video\n" * 200)
    (root / "videos" / "corrupt.avi").write_bytes(np.random.default_rng(0).bytes(50_000))
    gray, rgba = root / "gray", root / "rgba"
    for folder in (gray, rgba):
        folder.mkdir()
    for k, f in enumerate(frames):
        bgr = cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(gray / f"{k:03d}.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        cv2.imwrite(str(rgba / f"{k:03d}.png"), np.dstack([bgr, np.full(f.shape[:2], 200,
                                                                       np.uint8)]))
    (rgba / "005.png").write_bytes((rgba / "005.png").read_bytes()[:3000])  # one cut frame
    tiny = root / "tiny"
    tiny.mkdir()
    for k in range(3):
        cv2.imwrite(str(tiny / f"{k}.png"), np.zeros((12, 16, 3), np.uint8))
    return root


def _rel(path, root):
    return path[len(str(root)) + 1:] if path.startswith(str(root) + "/") else path


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_bad_inputs_are_recorded_and_skipped(messy, tmp_path, capsys):
    out = tmp_path / "ds"
    rc = main(["mine", str(messy), str(tmp_path / "missing.mp4"), "--out", str(out),
               "--no-progress"])
    assert rc == 0
    s = _summary(out)
    errors = {_rel(e["input"], messy): e["error"] for e in s["errors"]}
    assert errors[str(tmp_path / "missing.mp4")] == "no such file or folder"
    assert errors["videos/empty.mp4"] == "empty file"
    assert errors["videos/notes.mp4"] == "cannot open as a video"
    assert "videos/corrupt.avi" in errors
    assert errors["videos/truncated.mp4"] == "cannot open as a video"  # index was at the end
    assert errors["videos/box_cut.mp4"].startswith("truncated: decoded")
    assert errors["rgba/005.png"].startswith("truncated PNG")
    assert errors["tiny"].startswith("fewer than 2 usable frames")
    assert not {"gray", "videos/good.mp4", "videos/vfr.mp4"} & set(errors)
    by_source = {}
    for line in (out / "index.jsonl").read_text().splitlines():
        row = json.loads(line)
        by_source[_rel(row["source"], messy)] = row
    assert {"gray", "rgba", "videos/good.mp4", "videos/vfr.mp4"} <= set(by_source)  # mined
    # failed sources: the missing input, empty, notes, corrupt, tiny (+ truncated if unopenable)
    assert s["sources_failed"] >= 5
    assert "summary" not in capsys.readouterr().err


def test_strict_exits_nonzero(messy, tmp_path):
    rc = main(["mine", str(messy / "videos"), "--out", str(tmp_path / "ds"), "--strict",
               "--no-progress"])
    assert rc == 1
    assert _summary(tmp_path / "ds")["accepted"] > 0  # good.mp4 still landed


def test_cli_argument_errors(messy, tmp_path, capsys):
    import mimic_fast

    if not mimic_fast.build_config().get("cuda_devices"):  # no GPU here: one line, exit 2
        assert main(["mine", str(messy), "--out", str(tmp_path / "a"), "--device", "cuda"]) == 2
        assert "--device cuda" in capsys.readouterr().err
        assert not (tmp_path / "a").exists()
    assert main(["mine", str(messy), "--out", str(tmp_path / "b"), "--low", "0.9"]) == 2
    assert "low" in capsys.readouterr().err
