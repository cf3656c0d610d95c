"""``mimic-fast demo``: the main job on a built-in default input.

Computes patch correspondences and overlap for real ground-truth homographies (HPatches
v_birdwoman and Oxford graf, from ../shared/data when present) rescaled to 224x224 frames,
and for a generated camera path over scikit-image's astronaut photo (always available),
then draws the correspondences and writes a summary.
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
    p = subparsers.add_parser("demo", help="patch overlap on built-in inputs, with pictures")
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder")
    p.add_argument("--data", type=Path, default=DEFAULT_SHARED,
                   help="folder with hpatches_v_birdwoman/ and opencv_graf/ (optional)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import mimic_fast
    from mimic_fast.viz.correspondences import draw_correspondences, save_png

    pairs = list(_ground_truth_pairs(args.data)) + list(_astronaut_pairs())
    args.out.mkdir(parents=True, exist_ok=True)
    H = np.stack([p["H"] for p in pairs])
    res = mimic_fast.patch_overlap(H)
    rows = []
    for i, p in enumerate(pairs):
        keep = bool(mimic_fast.keep_pair(res.overlap[i]))
        title = f"{p['name']}: overlap {res.overlap[i]:.3f} ({'kept' if keep else 'rejected'})"
        img = draw_correspondences(p["view1"], p["view2"], res.correspondences[i], title=title)
        png = save_png(img, args.out / f"{p['name']}.png")
        rows.append({"pair": p["name"], "overlap": float(res.overlap[i]),
                     "counts": res.counts[i].tolist(), "kept": keep, "picture": str(png)})
        print(f"{p['name']:<28} overlap {res.overlap[i]:.3f}  matches {res.counts[i].tolist()}  "
              f"{'kept' if keep else 'rejected'}")
    summary = {"build": mimic_fast.build_config(), "pairs": rows}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"wrote {len(rows)} pictures and summary.json to {args.out}")
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
