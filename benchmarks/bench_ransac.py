"""RANSAC homography throughput and accuracy: cv2.findHomography (one pair per call, one
thread), the CPU kernel on one thread and on all threads, the CUDA kernel when present, on
the SAME matches. Prints a table, writes JSON.

    python benchmarks/bench_ransac.py            # synthetic 1,000 matches at 20/50/80%
                                                 # outliers + real SIFT matches (../shared/data)
    python benchmarks/bench_ransac.py --quick    # fewer pairs, for a smoke run

Accuracy beside each rate: median corner error against the known H (pixels, mean distance of
the four image corners) and mean inliers. Goals (issue 11): CPU >= 2x cv2.findHomography
pairs/s on one core at equal accuracy (median corner error no worse than OpenCV's + 0.5 px);
CUDA >= 20,000 pairs/s (1,000 matches, up to 2,000 iterations) on an H200.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "geometry"))
from bench_common import environment, time_call, write_json  # noqa: E402
from ransac_cases import corner_error, synthetic_matches  # noqa: E402
from ransac_real import real_matches  # noqa: E402

import mimic_fast  # noqa: E402
from mimic_fast.geometry.ransac import pad_matches  # noqa: E402

SHARED_DATA = HERE.parent.parent / "shared" / "data"


def synthetic_set(outliers: float, pairs: int, n: int = 1000, seed: int = 0):
    """[pairs] pairs of n matches in a 640x640 view, a known H each."""
    rng = np.random.default_rng(seed)
    src = np.zeros((pairs, n, 2), np.float32)
    dst = np.zeros_like(src)
    Hs = np.zeros((pairs, 3, 3))
    for b in range(pairs):
        s, d, Hs[b], _ = synthetic_matches(rng, n, outliers)
        src[b], dst[b] = s, d
    return src, dst, np.full(pairs, n), Hs, [(640, 640)] * pairs


def real_set(root: Path):
    """The real SIFT pairs (padded), their ground truth and view-1 sizes."""
    found = list(real_matches(root))
    src, dst, counts = pad_matches([(s, d) for _, s, d, _, _ in found])
    return (src, dst, counts, np.stack([H for _, _, _, H, _ in found]),
            [(w, h) for _, _, _, _, (h, w) in found]), [f[0] for f in found]


def opencv_batch(src, dst, counts, threshold=5.0):
    import cv2

    Hs = np.zeros((len(counts), 3, 3))
    inl = np.zeros(len(counts))
    for b, n in enumerate(counts):
        H, mask = cv2.findHomography(src[b, :n], dst[b, :n], cv2.RANSAC, threshold)
        if H is not None:
            Hs[b], inl[b] = H / H[2, 2], mask.sum()
    return Hs, inl


def accuracy(Hs, inliers, H_true, sizes):
    errs = [corner_error(H, T, w, h) if np.isfinite(H).all() and H[2, 2] != 0 else np.inf
            for H, T, (w, h) in zip(Hs, H_true, sizes)]
    return float(np.median(errs)), float(np.mean(inliers))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer pairs per set")
    ap.add_argument("--pairs", type=int, default=None, help="synthetic pairs per outlier ratio")
    args = ap.parse_args()
    import cv2

    pairs = args.pairs or (16 if args.quick else 64)
    sets = {f"synthetic 1000 matches, {int(o * 100)}% outliers": synthetic_set(o, pairs)
            for o in (0.2, 0.5, 0.8)}
    if SHARED_DATA.is_dir():
        real, names = real_set(SHARED_DATA)
        sets["real SIFT (HPatches birdwoman 1->2..6, graf 1->3)"] = real
    else:
        print(f"real matches: not measured ({SHARED_DATA} missing)")
    nthreads = os.cpu_count() or 1
    has_cuda = mimic_fast.build_config()["cuda_devices"] > 0
    rows = []
    print(f"{'set':<52} {'impl':<22} {'threads':>7} {'pairs/s':>10} {'x cv2':>6} {'med corner err px':>18} "
          f"{'mean inliers':>13}")
    for set_name, (src, dst, counts, H_true, sizes) in sets.items():
        repeats = 3 if args.quick else 5

        def add(impl, timing, Hs, inl, threads, device="cpu"):
            med, mean_inl = accuracy(Hs, inl, H_true, sizes)
            rate = len(counts) / timing["median_s"]
            base = next((r["pairs_per_s"] for r in rows
                         if r["set"] == set_name and r["impl"] == "cv2.findHomography"), rate)
            rows.append({"set": set_name, "impl": impl, "device": device, "threads": threads,
                         "pairs": len(counts), "pairs_per_s": rate, "vs_opencv": rate / base,
                         "median_corner_error_px": med, "mean_inliers": mean_inl, **timing})
            print(f"{set_name:<52} {impl:<22} {threads:>7} {rate:>10,.0f} {rate / base:>6.2f} {med:>18.3f} "
                  f"{mean_inl:>13.1f}", flush=True)

        cv2.setNumThreads(1)
        Hc, ic = opencv_batch(src, dst, counts)
        add("cv2.findHomography", time_call(lambda: opencv_batch(src, dst, counts), repeats),
            Hc, ic, 1)
        for threads in sorted({1, nthreads}):
            mimic_fast.set_num_threads(threads)
            out = mimic_fast.find_homographies(src, dst, counts)
            add("cpu kernel", time_call(lambda: mimic_fast.find_homographies(src, dst, counts),
                                         repeats), out.H, out.num_inliers, threads)
        mimic_fast.set_num_threads(nthreads)
        if has_cuda:
            import torch

            s, d, c = (torch.from_numpy(x).cuda() for x in (src, dst, counts))
            out = mimic_fast.find_homographies(s, d, c)
            add("cuda kernel", time_call(lambda: mimic_fast.find_homographies(s, d, c), repeats,
                                         warmup=2, sync=torch.cuda.synchronize),
                out.H.cpu().numpy(), out.num_inliers.cpu().numpy(), "-", device="cuda")
    if not has_cuda:
        print("cuda kernel: not measured (no CUDA device or no CUDA build)")

    summary = {}
    for set_name in sets:
        r = {row["impl"] + str(row["threads"]): row for row in rows if row["set"] == set_name}
        cv, one = r["cv2.findHomography1"], r["cpu kernel1"]
        summary[set_name] = {
            "cpu_one_thread_vs_opencv": one["pairs_per_s"] / cv["pairs_per_s"],
            "median_error_ours_px": one["median_corner_error_px"],
            "median_error_opencv_px": cv["median_corner_error_px"],
            "goal_met": bool(one["pairs_per_s"] >= 2 * cv["pairs_per_s"] and
                             one["median_corner_error_px"] <= cv["median_corner_error_px"] + 0.5),
        }
        print(f"{set_name}: CPU kernel 1 thread = {summary[set_name]['cpu_one_thread_vs_opencv']:.2f}x "
              f"cv2.findHomography; goal >= 2x at equal accuracy: "
              f"{'met' if summary[set_name]['goal_met'] else 'NOT met'}")
    device = "cuda" if has_cuda else "cpu"
    path = write_json(f"bench_ransac-{device}.json", {
        "benchmark": "find_homographies",
        "inputs": {"synthetic": f"{pairs} pairs x 1000 matches per outlier ratio, 640x640, "
                                "noise 1 px, tests/geometry/ransac_cases.py seed 0",
                   "real": "OpenCV SIFT + ratio 0.7 on ../shared/data/homography, long side "
                           "<= 640 px", "threshold": 5.0, "max_iters": 2000,
                   "confidence": 0.995},
        "environment": environment(), "summary": summary, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
