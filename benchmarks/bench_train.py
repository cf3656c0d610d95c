"""Training throughput: pairs/s and MFU of croco_base / mae_base in bf16, from synthetic
in-memory batches (the model + optimizer ceiling) and from real shards through the data
loader (end to end), plus the loader alone (the data-loading headroom).

    python benchmarks/bench_train.py                      # defaults for the device found
    python benchmarks/bench_train.py --data DIR --batch-size 256 --num-workers 12 --compile

Without a GPU it runs the CPU path at tiny scale (croco_test / mae_test, fp32, labelled
"cpu-tiny"): those numbers say nothing about the GPU goals (>= 2,000 pairs/s croco_base on
one H200). Without --data, a dataset is mined from ../shared/data (TUM frames) into a
temporary folder; its few pairs are repeated, which is fine for measuring rates.
Writes benchmarks/results/bench_train-<device>.json.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import environment, time_call, write_json  # noqa: E402

from mimic_fast.data.config import DataConfig  # noqa: E402
from mimic_fast.data.pipeline import train_batches  # noqa: E402
from mimic_fast.models import create_model  # noqa: E402
from mimic_fast.train.metrics import peak_flops  # noqa: E402
from mimic_fast.train.optim import make_optimizer  # noqa: E402
from mimic_fast.train.trainer import forward_loss  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def synthetic_batches(model, batch: int, device, two_views: bool):
    """One fixed batch of uint8 views + masks, already on the device (no loader cost)."""
    g = torch.Generator().manual_seed(0)
    s, n, m = model.img_size, model.num_patches, model.cfg.num_masked
    b = {"target": torch.randint(0, 256, (batch, 3, s, s), dtype=torch.uint8, generator=g).to(device),
         "mask": torch.argsort(torch.rand(batch, n, generator=g), 1).argsort(1).ge(n - m).to(device),
         "skipped": torch.zeros(batch, dtype=torch.long)}
    if two_views:
        b["reference"] = torch.randint(0, 256, (batch, 3, s, s), dtype=torch.uint8, generator=g).to(device)
    return itertools.repeat(b)


def step_fn(model, net, optimizer, batches, device, bf16: bool, steps: int):
    two_views = model.cfg.arch == "croco"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def run():
        for _ in range(steps):
            loss = forward_loss(net, next(batches), device, two_views, autocast, None)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return run


def bench_model(name, args, device, data_dir, bf16) -> list[dict]:
    torch.manual_seed(0)
    model = create_model(name).to(device)
    net = torch.compile(model) if args.compile else model
    optimizer = make_optimizer(model, 1e-4, 0.05, device=device.type)
    two_views = model.cfg.arch == "croco"
    sync = torch.cuda.synchronize if device.type == "cuda" else None
    flops = model.flops_per_sample()
    peak = peak_flops(device, args.peak_tflops)
    rows = []
    def make_loader():
        # Created only when its turn comes: its worker processes start decoding at once and
        # would otherwise steal cores from the synthetic measurement.
        return train_batches(
            DataConfig(path=str(data_dir), num_workers=args.num_workers, decode=args.decode),
            img_size=model.img_size, num_patches=model.num_patches,
            num_masked=model.cfg.num_masked, two_views=two_views, batch_size=args.batch_size,
            rank=0, world=1, seed=0, device=device.type)

    loader = None
    for source in ("synthetic", "shards"):
        if source == "synthetic":
            batches = synthetic_batches(model, args.batch_size, device, two_views)
        else:
            batches = loader = make_loader()
        fn = step_fn(model, net, optimizer, batches, device, bf16, args.steps)
        t = time_call(fn, repeats=args.repeats, warmup=1, sync=sync)
        pairs_s = args.steps * args.batch_size / t["median_s"]
        rows.append({"model": name, "source": source, "batch": args.batch_size,
                     "precision": "bf16" if bf16 else "fp32", "compile": args.compile,
                     "pairs_per_s": pairs_s, "pairs_per_s_min": args.steps * args.batch_size / t["max_s"],
                     "mfu": 3 * flops * pairs_s / peak if peak else None,
                     "tflops": 3 * flops * pairs_s / 1e12, **t})
    # the loader alone: how many pairs/s it can feed (headroom over the model's rate)
    t = time_call(lambda: [next(loader) for _ in range(args.steps)], repeats=args.repeats, warmup=1)
    rows.append({"model": name, "source": "loader only", "batch": args.batch_size,
                 "workers": args.num_workers, "pairs_per_s": args.steps * args.batch_size / t["median_s"], **t})
    del model, net, optimizer
    return rows


def mine_default(tmp: Path) -> Path:
    from mimic_fast.mining.config import MineConfig, RunOptions
    from mimic_fast.mining.run import mine

    out = tmp / "tum"
    mine([SHARED / "video" / "tum_freiburg_frames"], out, MineConfig(kind="frames"), RunOptions(progress=False))
    return out


def main(argv=None) -> int:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+",
                   default=["croco_base", "mae_base"] if cuda else ["croco_test", "mae_test"])
    p.add_argument("--batch-size", type=int, default=128 if cuda else 8)
    p.add_argument("--steps", type=int, default=20 if cuda else 3, help="optimizer steps per timed repeat")
    p.add_argument("--repeats", type=int, default=5 if cuda else 3)
    p.add_argument("--num-workers", type=int, default=12 if cuda else 1)
    p.add_argument("--decode", default="auto", choices=("auto", "cpu", "dali"))
    p.add_argument("--data", type=Path, default=None, help="dataset folder (default: mine the TUM frames)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--peak-tflops", type=float, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cuda" if cuda else "cpu")
    bf16 = cuda
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    label = "cuda" if cuda else "cpu-tiny"
    if not cuda:
        print("No GPU: measuring the CPU path at tiny scale (croco_test / mae_test, fp32). "
              "These numbers are NOT the GPU goals; run on a GPU for croco_base / mae_base in bf16.")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or mine_default(Path(tmp))
        rows = []
        for name in args.models:
            rows += bench_model(name, args, device, data, bf16)
    print(f"\n{'model':12s} {'source':12s} {'batch':>5s} {'pairs/s':>10s} {'min':>10s} {'MFU':>7s}")
    for r in rows:
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") else "-"
        print(f"{r['model']:12s} {r['source']:12s} {r['batch']:5d} {r['pairs_per_s']:10.1f} "
              f"{r.get('pairs_per_s_min', float('nan')):10.1f} {mfu:>7s}")
    by = {(r["model"], r["source"]): r["pairs_per_s"] for r in rows}
    for name in args.models:
        if (name, "synthetic") in by:
            print(f"{name}: end to end from shards = {by[(name, 'shards')] / by[(name, 'synthetic')]:.0%} "
                  f"of synthetic; loader alone = {by[(name, 'loader only')] / by[(name, 'synthetic')]:.1f}x "
                  "the model's rate")
    path = write_json(f"bench_train-{device.type}.json", {
        "label": label, "args": {k: str(v) for k, v in vars(args).items()},
        "data": str(args.data or "mined from ../shared/data/video/tum_freiburg_frames"),
        "environment": environment(), "results": rows, "time": time.time()})
    print(f"-> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
