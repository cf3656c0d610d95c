"""Patch-overlap throughput: published per-point loop, numpy reference, CPU kernel on one
thread and on all threads, CUDA kernel when present. Prints a table, writes JSON.

    python benchmarks/bench_overlap.py            # default batches 1 .. 65,536
    python benchmarks/bench_overlap.py --quick    # smaller batches, for a smoke run
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_overlap import published_patch_overlap  # noqa: E402
from bench_common import environment, time_call, write_json  # noqa: E402

import mimic_fast  # noqa: E402
from mimic_fast.geometry.reference import patch_overlap_reference  # noqa: E402


def camera_motion_homographies(n: int, seed: int = 0, size: int = 224) -> np.ndarray:
    """Homographies of a camera moving between two video frames, about the view centre:
    rotation +-10 deg, zoom 0.8-1.25, shift +-40 px, perspective +-5e-4 (overlaps spread
    over 0.3-1)."""
    rng = np.random.default_rng(seed)
    c = size / 2
    t = np.deg2rad(rng.uniform(-10, 10, n))
    s = np.exp(rng.uniform(np.log(0.8), np.log(1.25), n))
    H = np.zeros((n, 3, 3))
    H[:, 0, 0], H[:, 0, 1] = s * np.cos(t), -s * np.sin(t)
    H[:, 1, 0], H[:, 1, 1] = s * np.sin(t), s * np.cos(t)
    H[:, 2, :2] = rng.uniform(-5e-4, 5e-4, (n, 2))
    H[:, 2, 2] = 1
    shift = rng.uniform(-40, 40, (n, 2))
    T = np.tile(np.eye(3), (n, 1, 1))
    T[:, :2, 2] = c + shift
    Ti = np.eye(3)
    Ti[:2, 2] = -c
    return T @ H @ Ti


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batches up to 4,096 only")
    ap.add_argument("--baseline-pairs", type=int, default=3,
                    help="pairs timed for the published per-point loop (it is slow)")
    args = ap.parse_args()

    batches = [1, 16, 256, 4096] + ([] if args.quick else [65536])
    H_all = camera_motion_homographies(max(batches))
    rows = []

    def add(impl, threads, batch, timing, device="cpu"):
        pairs_s = batch / timing["median_s"]
        rows.append({"impl": impl, "device": device, "threads": threads, "batch": batch,
                     "pairs_per_s": pairs_s, **timing})
        print(f"{impl:<22} {device:<5} {threads:>7} {batch:>7} {pairs_s:>14,.0f} "
              f"{timing['median_s'] * 1e3:>11.2f} [{timing['min_s'] * 1e3:.2f}, "
              f"{timing['max_s'] * 1e3:.2f}]", flush=True)

    print(f"{'impl':<22} {'dev':<5} {'threads':>7} {'batch':>7} {'pairs/s':>14} "
          f"{'median ms':>11} [min, max]")
    nb = args.baseline_pairs
    t0 = time.perf_counter()
    for i in range(nb):
        published_patch_overlap(H_all[i])
    base = (time.perf_counter() - t0) / nb
    add("published per-point", 1, 1, {"median_s": base, "min_s": base, "max_s": base,
                                       "repeats": nb})
    add("numpy reference", 1, 16, time_call(lambda: patch_overlap_reference(H_all[:16]), 2))

    nthreads = os.cpu_count() or 1
    for threads in sorted({1, nthreads}):
        mimic_fast.set_num_threads(threads)
        for b in batches:
            H = H_all[:b]
            repeats = 20 if b <= 256 else 3
            add("cpu kernel", threads, b, time_call(lambda: mimic_fast.patch_overlap(H), repeats))
    mimic_fast.set_num_threads(nthreads)

    cuda_batches = batches + ([262144] if not args.quick else [])
    if mimic_fast.build_config()["cuda_devices"] > 0:
        import torch

        H_gpu = torch.from_numpy(camera_motion_homographies(max(cuda_batches))).cuda()
        for b in cuda_batches:
            Hb = H_gpu[:b]
            add("cuda kernel", "-", b, time_call(lambda: mimic_fast.patch_overlap(Hb), 10,
                                                 warmup=2, sync=torch.cuda.synchronize),
                device="cuda")
    else:
        print("cuda kernel: not measured (no CUDA device or no CUDA build)")

    one = max(r["pairs_per_s"] for r in rows if r["impl"] == "cpu kernel" and r["threads"] == 1)
    summary = {
        "published_pairs_per_s": 1 / base,
        "cpu_one_thread_pairs_per_s": one,
        "speedup_vs_published_one_thread": one * base,
        "goal_cpu_one_core_pairs_per_s": 2500,
    }
    cuda_rows = [r for r in rows if r["impl"] == "cuda kernel" and r["batch"] >= 65536]
    if cuda_rows:
        summary["cuda_pairs_per_s_batch_ge_65536"] = max(r["pairs_per_s"] for r in cuda_rows)
        summary["goal_cuda_pairs_per_s"] = 2_000_000
    print(f"\nCPU kernel, one thread: {one:,.0f} pairs/s = {one * base:,.0f}x the published "
          f"per-point loop ({1 / base:.1f} pairs/s) on the same homographies; goal >= 2,500")
    device = "cuda" if cuda_rows else "cpu"
    path = write_json(f"bench_overlap-{device}.json", {
        "benchmark": "patch_overlap", "inputs": {
            "image_size": [224, 224], "patch_size": 16, "samples": 100,
            "homographies": "camera_motion_homographies(seed=0)", "batches": batches},
        "environment": environment(), "summary": summary, "rows": rows})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
