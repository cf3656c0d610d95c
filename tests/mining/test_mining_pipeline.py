"""Mining real clips and frames: the negative control, stored H vs stored images, format."""

from __future__ import annotations

import json
import tarfile

import cv2
import numpy as np
import pytest

from mimic_fast.mining import synthetic
from mimic_fast.mining.config import MineConfig, RunOptions
from mimic_fast.dataset.reader import iter_samples, read_index
from mimic_fast.mining.run import mine

QUIET = RunOptions(progress=False)


@pytest.fixture(scope="module")
def mined(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("mined") / "ds"
    video = shared_data / "video"
    summary = mine([video / "tum_freiburg_frames", video / "opencv_box/box.mp4"], out,
                   MineConfig(static_fraction=0.1), QUIET)
    return out, summary


def _ncc(a, b, mask):
    a, b = a[mask].astype(float), b[mask].astype(float)
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def test_static_camera_filter_rejects_most_box_pairs_and_keeps_moving_camera(mined, shared_data,
                                                                           tmp_path):
    """box.mp4: a static camera, a hand moves a box. Off (the default, as published) its
    pairs are RANSAC following the box; the opt-in filter rejects most of them (with the
    published views 2 of 6 remain: 4 and 5 static matches, not more than static_min)."""
    out, summary = mined
    rows = read_index(out)
    box_with = [r for r in rows if r["kind"] == "video"]
    assert len([r for r in rows if r["kind"] == "frames"]) >= 5
    assert summary["accepted"] == len(rows)
    assert summary["candidates"] == summary["accepted"] + sum(summary["rejected"].values())
    assert summary["sources"] == 2 and summary["sources_failed"] == 0
    assert summary["rejected"].get("static_camera", 0) >= 3
    off = mine([shared_data / "video/opencv_box/box.mp4"], tmp_path / "off", MineConfig(), QUIET)
    assert off["rejected"].get("static_camera", 0) == 0
    assert len(box_with) <= off["accepted"] - 3, (len(box_with), off["accepted"])


def _highpass(g):
    g = g.astype(np.float32)
    return g - cv2.GaussianBlur(g, (0, 0), 3)


def test_stored_h_explains_stored_images(mined):
    """Warping 0.jpg by H matches 1.jpg better than leaving it in place (a real 3D scene, so a
    homography explains it only roughly; high-pass NCC removes the shared low frequencies).
    The moving-camera source only: box.mp4's remaining pairs follow a moving box."""
    out, _ = mined
    raw = []
    for s in iter_samples(out):
        if s.meta["kind"] != "frames":
            continue
        H = np.array(s.meta["H"])
        g1 = cv2.cvtColor(s.view1, cv2.COLOR_RGB2GRAY)
        g2 = cv2.cvtColor(s.view2, cv2.COLOR_RGB2GRAY)
        warped = cv2.warpPerspective(g1, H, (224, 224))
        mask = cv2.warpPerspective(np.ones_like(g1), H, (224, 224)) > 0
        mask = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        with_h, identity = _ncc(warped, g2, mask), _ncc(g1, g2, mask)
        assert with_h > identity + 0.1, (s.key, with_h, identity)
        hp_h = _ncc(_highpass(warped), _highpass(g2), mask)
        hp_id = _ncc(_highpass(g1), _highpass(g2), mask)
        assert hp_h > hp_id + 0.05, (s.key, hp_h, hp_id)
        raw.append(with_h)
    assert np.median(raw) > 0.6


def test_sample_fields_and_correspondences(mined):
    out, _ = mined
    for s in iter_samples(out):
        m = s.meta
        assert s.view1.shape == s.view2.shape == (224, 224, 3)
        assert 0.5 < m["overlap"] < 0.75
        corr = np.array(m["correspondences"])
        assert len(corr) == min(m["counts"]) == round(m["overlap"] * 196)
        assert len(set(corr[:, 0])) == len(corr) == len(set(corr[:, 1]))  # one-to-one
        assert corr.min() >= 0 and corr.max() < 196 and np.all(np.diff(corr[:, 0]) > 0)
        assert m["inliers"] <= m["matches"] and m["matches"] > 10
        assert m["frames"][0] < m["frames"][1]
        if m["kind"] == "frames":
            assert m["paths"][0].endswith(".png") and m["times"] is None
        else:  # box.mp4: samples every second, at presentation times
            assert m["kind"] == "video" and m["paths"] is None
            assert all(f % 30 == 0 for f in m["frames"])
            assert [round(t * 29.966) for t in m["times"]] == m["frames"]
        assert s.key == f"{s.key.split('-')[0]}-{m['frames'][0]:06d}-{m['frames'][1]:06d}"


def test_readable_with_webdataset_and_tar(mined):
    import webdataset as wds

    out, _ = mined
    rows = read_index(out)
    shards = sorted({str(out / r["shard"]) for r in rows})
    got = list(wds.WebDataset(shards, shardshuffle=False))
    assert [g["__key__"] for g in got] == [r["key"] for r in rows]
    for g in got:
        assert set(g) >= {"0.jpg", "1.jpg", "json"}
        assert json.loads(g["json"])["key"] == g["__key__"]
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        assert names[:3] == [f"{rows[0]['key']}.0.jpg", f"{rows[0]['key']}.1.jpg",
                             f"{rows[0]['key']}.json"]
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())


@pytest.mark.parametrize("ransac", ["opencv", "native"])
def test_generated_camera_path_recovers_true_homographies(tmp_path, ransac):
    hw = (360, 480)
    frames, mats = synthetic.camera_path(synthetic.photo("astronaut"), 14, hw, seed=1)
    synthetic.write_frames(frames, tmp_path / "frames")
    summary = mine([tmp_path / "frames"], tmp_path / "ds", MineConfig(ransac=ransac), QUIET)
    assert summary["accepted"] >= 3
    corners = np.array([[40, 40, 1], [184, 40, 1], [40, 184, 1], [184, 184, 1]], float).T
    errs = []
    for s in iter_samples(tmp_path / "ds"):
        i, j = s.meta["frames"]
        H, T = np.array(s.meta["H"]), synthetic.true_homography(mats[i], mats[j], hw)
        p, q = H @ corners, T @ corners
        errs.append(np.linalg.norm(p[:2] / p[2] - q[:2] / q[2], axis=0).max())
    assert np.median(errs) < 3.0, errs


def test_group_best_keeps_the_lowest_overlap_in_range(shared_data, tmp_path):
    import shutil

    tum = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))
    group = tmp_path / "scene"
    group.mkdir()
    for p in tum[2:8]:
        shutil.copy(p, group / p.name)
    all_ = mine([group], tmp_path / "all", MineConfig(kind="group"), QUIET)
    best = mine([group], tmp_path / "best", MineConfig(kind="group", group_keep="best"), QUIET)
    assert all_["candidates"] == best["candidates"] == 15  # all pairs of 6 views
    rows_all, rows_best = read_index(tmp_path / "all"), read_index(tmp_path / "best")
    assert len(rows_all) >= 2 and len(rows_best) == 1
    assert rows_best[0]["overlap"] == min(r["overlap"] for r in rows_all)
    assert best["rejected"]["not_best"] == len(rows_all) - 1


def test_pair_list_with_missing_file_and_duplicate(shared_data, tmp_path):
    tum = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))
    lines = ["path1,path2"] + [f"{tum[i]},{tum[i + 1]}" for i in range(3, 9)]
    lines += [f"{tum[3]},{tum[4]}", f"{tmp_path / 'gone.png'},{tum[4]}"]
    (tmp_path / "pairs.csv").write_text("\n".join(lines) + "\n")
    s = mine([tmp_path / "pairs.csv"], tmp_path / "ds", MineConfig(), QUIET)
    assert s["candidates"] == 8
    assert s["rejected"]["duplicate"] == 1 and s["rejected"]["frame_error"] == 1
    assert s["errors"] == [{"input": str(tmp_path / "gone.png"), "error": "cannot read file: "
                            "No such file or directory"}]
    assert s["accepted"] >= 2


def test_native_ransac_verdicts_do_not_depend_on_the_batch(tmp_path):
    from mimic_fast.mining.evaluate import evaluate
    from mimic_fast.mining.views import folder_views

    frames, _ = synthetic.camera_path(synthetic.photo("coffee"), 8, (240, 320), seed=4)
    synthetic.write_frames(frames, tmp_path)
    cfg = MineConfig(ransac="native")
    views = list(folder_views(str(tmp_path), cfg, 1, []))
    pairs = [(views[i], views[j]) for i in range(8) for j in range(i + 1, 8)]
    batched = evaluate(pairs, cfg)
    assert sum(c.H is not None for c in batched) >= 10
    for pair, b in zip(pairs, batched):
        alone = evaluate([pair], cfg)[0]
        assert (alone.reason, alone.inliers, alone.overlap) == (b.reason, b.inliers, b.overlap)
        assert (alone.H is None and b.H is None) or np.array_equal(alone.H, b.H)
