"""``mimic-fast train`` and ``mimic-fast eval`` (torch is imported inside the commands)."""

from __future__ import annotations

import argparse
import logging
import os

log = logging.getLogger(__name__)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset folder of *.tar shards, a .csv of the "
                   "published layout, or a URL / brace pattern of shards (streamed with fsspec)")
    p.add_argument("--model", default="croco_base",
                   help="croco_base | croco_large | mae_base | croco_test | mae_test")
    p.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--max-steps", type=int, required=True, help="optimizer steps to reach")
    p.add_argument("--batch-size", type=int, required=True, help="pairs per micro-batch per process")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", default="auto", choices=("auto", "bf16", "fp32"),
                   help="auto = bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--pos-embed", default="cosine", choices=("cosine", "rope100"))
    p.add_argument("--attn-impl", default="auto", choices=("auto", "triton", "torch"))
    p.add_argument("--img-size", type=int, default=None, help="model input size (default: the preset's)")
    g = p.add_argument_group("optimizer")
    g.add_argument("--blr", type=float, default=1.5e-4, help="lr = blr * effective batch / 256")
    g.add_argument("--lr", type=float, default=None, help="absolute peak lr (overrides --blr)")
    g.add_argument("--min-lr", type=float, default=0.0)
    g.add_argument("--weight-decay", type=float, default=0.05)
    g.add_argument("--warmup-steps", type=int, default=None, help="default: 5%% of the schedule")
    g.add_argument("--schedule-steps", type=int, default=None,
                   help="length of warmup + cosine (default: --max-steps of the first run)")
    g.add_argument("--grad-clip", type=float, default=None)
    g = p.add_argument_group("data")
    g.add_argument("--num-workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="loader processes per rank (default: min(4, cores))")
    g.add_argument("--decode", default="auto", choices=("auto", "cpu", "dali"))
    g.add_argument("--augment", action="store_true",
                   help="CroCo augmentations: random crops, colour jitter per view")
    g.add_argument("--holdout", type=float, default=0.0,
                   help="fraction of pairs kept out of training (for eval)")
    g.add_argument("--streaming", action="store_true", help="stream shards instead of indexing them")
    g.add_argument("--shuffle-buffer", type=int, default=1000)
    g.add_argument("--strict-data", action="store_true",
                   help="refuse damaged data (a shard or pair that differs from what the "
                        "dataset's index.jsonl records, or any unreadable pair) instead of "
                        "skipping it with a warning")
    g = p.add_argument_group("logging and checkpoints")
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--ckpt-every", type=int, default=500)
    g.add_argument("--keep-every", type=int, default=0, help="keep checkpoints/step-N.pt every N steps")
    g.add_argument("--no-progress", action="store_true")
    g.add_argument("--peak-tflops", type=float, default=None, help="per-device peak for MFU")


def config_from_args(args):
    from mimic_fast.data.config import DataConfig
    from mimic_fast.train.config import OptimConfig, TrainConfig

    data = DataConfig(path=args.data, decode=args.decode, num_workers=args.num_workers,
                      augment=args.augment, holdout=args.holdout, streaming=args.streaming,
                      shuffle_buffer=args.shuffle_buffer, strict=args.strict_data)
    optim = OptimConfig(blr=args.blr, lr=args.lr, min_lr=args.min_lr, weight_decay=args.weight_decay,
                        warmup_steps=args.warmup_steps, schedule_steps=args.schedule_steps,
                        grad_clip=args.grad_clip)
    return TrainConfig(out=args.out, model=args.model, pos_embed=args.pos_embed,
                       attn_impl=args.attn_impl, img_size=args.img_size, max_steps=args.max_steps,
                       batch_size=args.batch_size, accum=args.accum, device=args.device,
                       precision=args.precision, compile=args.compile, seed=args.seed,
                       log_every=args.log_every, ckpt_every=args.ckpt_every,
                       keep_every=args.keep_every, progress=not args.no_progress,
                       peak_tflops=args.peak_tflops, data=data, optim=optim)


def run_train(args) -> int:
    from mimic_fast.data.dali import DaliUnavailable
    from mimic_fast.data.index import DataError
    from mimic_fast.train.trainer import NonFiniteLoss, SkipLimit, train

    try:
        train(config_from_args(args))
    except (DataError, DaliUnavailable, NonFiniteLoss, SkipLimit, ValueError) as exc:
        log.debug("traceback", exc_info=True)
        log.error("%s: %s", type(exc).__name__, exc)
        return 2
    return 0


def run_eval(args) -> int:
    from mimic_fast.data.index import DataError
    from mimic_fast.train.evaluate import evaluate

    try:
        result = evaluate(args.checkpoint, data=args.data, split=args.split, batch_size=args.batch_size,
                          max_pairs=args.max_pairs, device=args.device, out=args.out,
                          num_images=args.num_images, seed=args.seed, num_workers=args.num_workers)
    except (DataError, FileNotFoundError, ValueError) as exc:
        log.error("%s: %s", type(exc).__name__, exc)
        return 2
    print(f"step {result['step']}: loss {result['loss']:.4f} (pixel MSE {result['pixel_mse']:.5f}) "
          f"over {result['pairs']} pairs -> {result['json']}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="pretrain CroCo / MAE on a mined dataset (bf16, DDP via torchrun)",
                              description="Pretrain CroCo / MAE on mined pairs. Multi-GPU: "
                              "torchrun --nproc_per_node N -m mimic_fast.train ARGS")
    add_train_arguments(p)
    p.set_defaults(func=run_train)

    e = subparsers.add_parser("eval", help="reconstruction loss on held-out pairs + a PNG grid")
    e.add_argument("checkpoint", help="run folder or checkpoint file")
    e.add_argument("--data", default=None, help="dataset (default: the run's)")
    e.add_argument("--split", default="auto", choices=("auto", "holdout", "all"),
                   help="auto = the run's held-out pairs when it had --holdout, else all pairs")
    e.add_argument("--batch-size", type=int, default=16)
    e.add_argument("--max-pairs", type=int, default=None)
    e.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    e.add_argument("--out", default=None, help="folder for eval-STEP.json/png (default RUN/eval)")
    e.add_argument("--num-images", type=int, default=8, help="pairs in the PNG grid")
    e.add_argument("--seed", type=int, default=0, help="seed of the fixed per-pair masks")
    e.add_argument("--num-workers", type=int, default=2)
    e.set_defaults(func=run_eval)
