"""``mimic-fast demo``: the main job on a built-in default input.

1. Mining (the main job): a generated camera path over a real photo (scikit-image's
   astronaut, shipped with the package) is written as ``OUT/sample/camera_path.mp4``, mined
   with ``mimic-fast mine`` defaults into ``OUT/dataset`` (WebDataset shards, index, summary),
   and the first pair is drawn to ``OUT/pair.png`` with its patch correspondences, plus the
   stats plot ``OUT/overlap_hist.png`` (every candidate's overlap against the accepted
   pairs', the keep band shaded, and the rejection reasons). Because the path is generated, the true
   homographies are known; the demo prints how far the mined ones are from them.
2. Patch overlap on real ground-truth homographies (HPatches v_birdwoman and Oxford graf,
   from ../shared/data when present) and on warps of the astronaut photo, with pictures in
   ``OUT/homography``.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "homography"


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="mine a built-in sample video; overlap pictures")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--data", type=Path, default=DEFAULT_SHARED,
                   help="folder with hpatches_v_birdwoman/ and opencv_graf/ (optional)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mine_sample(args.out)
    return overlap_pictures(args.out / "homography", args.data)


def mine_sample(out: Path, n_frames: int = 24) -> dict:
    """Generate the sample video, mine it, draw a pair and the histogram; returns the summary."""
    import shutil

    from mimic_fast.mining import synthetic
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.dataset.reader import iter_samples
    from mimic_fast.mining.run import format_summary, mine
    from mimic_fast.viz.correspondences import (
        draw_correspondences, pair_title, save_png, view_labels,
    )
    from mimic_fast.viz.histogram import overlap_histogram
    from mimic_fast.viz.overview import load_overview

    fps, hw = 2.0, (360, 480)
    frames, mats = synthetic.camera_path(synthetic.photo("astronaut"), n_frames, hw)
    video = synthetic.write_video(frames, out / "sample" / "camera_path.mp4", fps=fps)
    print(f"generated {video} ({n_frames} frames, a camera path over skimage's astronaut)")
    dataset = out / "dataset"
    shutil.rmtree(dataset, ignore_errors=True)  # the demo always mines afresh
    summary = mine([video], dataset, MineConfig(interval=1 / fps), RunOptions(progress=False))
    print(format_summary(summary))
    errors = []
    for k, s in enumerate(iter_samples(dataset)):
        m = s.meta
        # frame numbers of the mp4 are frame indices of the generated path (1 frame / interval)
        H_true = synthetic.true_homography(mats[m["frames"][0]], mats[m["frames"][1]], hw)
        errors.append(_corner_error(np.array(m["H"]), H_true))
        if k == 0:
            save_png(draw_correspondences(s.view1, s.view2, m["correspondences"],
                                          title=pair_title(m), labels=view_labels(m), lines=8),
                     out / "pair.png")
    ov = load_overview(dataset)
    overlap_histogram(ov.candidate_overlaps, ov.accepted_overlaps, out / "overlap_hist.png",
                      ov.low, ov.high, title="demo: patch overlap",
                      rejected=ov.summary["rejected"])
    if errors:
        print(f"mined H vs the true H: median corner error {np.median(errors):.2f} px "
              f"(224x224 views), max {np.max(errors):.2f} px")
    print(f"wrote {dataset}, {out / 'pair.png'}, {out / 'overlap_hist.png'}")
    return summary


def _corner_error(H: np.ndarray, H_true: np.ndarray, size: int = 224) -> float:
    c = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], float).T
    p, q = H @ c, H_true @ c
    return float(np.max(np.linalg.norm(p[:2] / p[2] - q[:2] / q[2], axis=0)))


def overlap_pictures(out: Path, data: Path) -> int:
    """Patch overlap on ground-truth homographies, with pictures (the foundation demo)."""
    import mimic_fast
    from mimic_fast.viz.correspondences import draw_correspondences, save_png

    pairs = list(_ground_truth_pairs(data)) + list(_astronaut_pairs())
    out.mkdir(parents=True, exist_ok=True)
    H = np.stack([p["H"] for p in pairs])
    res = mimic_fast.patch_overlap(H)
    rows = []
    for i, p in enumerate(pairs):
        keep = bool(mimic_fast.keep_pair(res.overlap[i]))
        title = f"{p['name']}: overlap {res.overlap[i]:.3f} ({'kept' if keep else 'rejected'})"
        img = draw_correspondences(p["view1"], p["view2"], res.correspondences[i], title=title,
                                   labels=("view 1", "view 2 (H maps view 1 here)"))
        png = save_png(img, out / f"{p['name']}.png")
        rows.append({"pair": p["name"], "overlap": float(res.overlap[i]),
                     "counts": res.counts[i].tolist(), "kept": keep, "picture": str(png)})
        print(f"{p['name']:<28} overlap {res.overlap[i]:.3f}  matches {res.counts[i].tolist()}  "
              f"{'kept' if keep else 'rejected'}")
    summary = {"build": mimic_fast.build_config(), "pairs": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {len(rows)} pictures and summary.json to {out}")
    return 0


def _load_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _resized(img: np.ndarray, size: int = 224) -> np.ndarray:
    import cv2

    return cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)


def _ground_truth_pairs(root: Path):
    """Real image pairs with ground-truth H, rescaled to 224x224 views."""
    from mimic_fast.geometry.homography import rescale_homography

    hp = root / "hpatches_v_birdwoman"
    if hp.is_dir():
        img1 = _load_rgb(hp / "1.ppm")
        for k in (2, 3, 4):
            imgk = _load_rgb(hp / f"{k}.ppm")
            H = rescale_homography(np.loadtxt(hp / f"H_1_{k}"), img1.shape[:2], imgk.shape[:2])
            yield {"name": f"hpatches_birdwoman_1_{k}", "H": H,
                   "view1": _resized(img1), "view2": _resized(imgk)}
    graf = root / "opencv_graf"
    if graf.is_dir():
        import cv2

        fs = cv2.FileStorage(str(graf / "H1to3p.xml"), cv2.FILE_STORAGE_READ)
        H13 = fs.getNode("H13").mat()
        fs.release()
        g1, g3 = _load_rgb(graf / "graf1.png"), _load_rgb(graf / "graf3.png")
        yield {"name": "graf_1_3", "H": rescale_homography(H13, g1.shape[:2], g3.shape[:2]),
               "view1": _resized(g1), "view2": _resized(g3)}
    if not hp.is_dir() and not graf.is_dir():
        log.warning("no ground-truth data under %s; using the generated pairs only", root)


def _astronaut_pairs():
    """A generated camera path over a real photo: each view is a homography warp of it."""
    import cv2
    from skimage import data

    photo = data.astronaut()  # 512x512 RGB, ships with scikit-image
    base = np.array([[0.4375, 0, 0], [0, 0.4375, 0], [0, 0, 1.0]])  # 512 -> 224
    views = {
        "shift": np.array([[1, 0, 30], [0, 1, 12], [0, 0, 1.0]]),
        "zoom_rotate": _about_centre(1.25, 12.0),
        "tilt": np.array([[1, 0.05, 0], [0.02, 1, 0], [6e-4, 3e-4, 1.0]]),
    }
    view1 = cv2.warpPerspective(photo, base, (224, 224))
    for name, M in views.items():
        A = M @ base  # photo -> view 2
        view2 = cv2.warpPerspective(photo, A, (224, 224))
        yield {"name": f"astronaut_{name}", "H": M, "view1": view1, "view2": view2}


def _about_centre(scale: float, degrees: float, c: float = 112.0) -> np.ndarray:
    t = np.deg2rad(degrees)
    R = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    S = np.diag([scale, scale, 1.0])
    T = np.array([[1, 0, c], [0, 1, c], [0, 0, 1.0]])
    Ti = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1.0]])
    return T @ R @ S @ Ti
