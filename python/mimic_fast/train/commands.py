"""``mimic-fast train`` and ``mimic-fast eval`` (torch is imported inside the commands).

The options' defaults are read from the config dataclasses (``train/config.py``,
``data/config.py``), the one place that decides them; the help shows them. A mistake in the
arguments (unknown model, no GPU, missing data) is one line on stderr and exit 2, found
before anything is written.
"""

from __future__ import annotations

import argparse
import logging

log = logging.getLogger(__name__)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    from mimic_fast.cli import add_dataclass_options as add
    from mimic_fast.data.config import DECODERS, DataConfig
    from mimic_fast.train.config import (BLR, DEVICES, PRECISIONS, PRESET_OPTIM, WARMUP_FRACTION,
                                         OptimConfig, TrainConfig)

    def by_preset(field: str) -> str:
        return ", ".join(f"{v[field]:g} for {k}" for k, v in PRESET_OPTIM.items() if field in v)

    p.add_argument("--data", required=True, help="dataset folder of *.tar shards, a .csv of the "
                   "published layout, or a URL / brace pattern of shards (streamed with fsspec)")
    add(p, TrainConfig, {"model": "model preset: croco_base | croco_large | mae_base | "
                                  "croco_test | mae_test (the *_test presets are tiny, for CPU "
                                  "smoke runs)"})
    p.add_argument("--out", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--max-steps", type=int, required=True, help="optimizer steps to reach")
    p.add_argument("--batch-size", type=int, required=True, help="pairs per micro-batch per process")
    add(p, TrainConfig, {
        "accum": "micro-batches per optimizer step",
        "device": "auto = cuda when torch sees a GPU, else cpu",
        "seed": "initial weights, masks and data order (default: %(default)s)",
        "precision": "auto = bf16 autocast on CUDA, fp32 on CPU",
        "compile": "torch.compile the model",
        "pos_embed": "position embedding: 2-D sin-cos (CroCo v1, MIMIC) or RoPE base 100 "
                     "(CroCo v2)",
        "attn_impl": "attention kernel: auto = Triton on CUDA, torch SDPA elsewhere",
        "img_size": "model input size (default: the preset's, 224)",
    }, choices={"device": DEVICES, "precision": PRECISIONS,
                # the same as models.config's POS_EMBEDS / ATTN_IMPLS, which import torch
                "pos_embed": ("cosine", "rope100"), "attn_impl": ("auto", "triton", "torch")})

    add(p.add_argument_group("optimizer (unset: the model preset's settings, see below)"),
        OptimConfig, {
            "blr": f"base lr: peak lr = blr x effective batch / 256 (default: {BLR}, the "
                   "MAE/CroCo value, unless the preset brings its own lr)",
            "lr": f"absolute peak lr, overrides --blr (default: {by_preset('lr')}, so that a few "
                  "hundred CPU steps show the loss fall; the other presets use --blr)",
            "min_lr": "lr at the end of the half-cosine (default: %(default)s)",
            "weight_decay": "AdamW weight decay (not on biases and norms)",
            "warmup_steps": f"linear warmup steps (default: {by_preset('warmup_steps')}, else "
                            f"{WARMUP_FRACTION * 100:g}%% of the schedule)",
            "schedule_steps": "length of warmup + cosine (default: --max-steps of the first "
                              "run, kept on resume)",
            "grad_clip": "max global gradient norm (default: no clipping, as CroCo/MAE)",
        })

    add(p.add_argument_group("data"), DataConfig, {
        "num_workers": "loader processes per rank (0 = in the training process)",
        "decode": "JPEG decoding: auto = DALI when importable and training on CUDA from a local "
                  "shard folder without holdout or streaming, else cpu",
        "augment": "CroCo augmentations: random crops, colour jitter per view",
        "holdout": "fraction of pairs (chosen by a hash of the key) kept out of training, for "
                   "`mimic-fast eval` (default: %(default)s)",
        "streaming": "stream shards instead of indexing them",
        "shuffle_buffer": "samples in the streaming reader's shuffle buffer",
        "strict": "refuse damaged data (a shard or pair that differs from what the dataset's "
                  "index.jsonl records, or any unreadable pair) instead of skipping it with a "
                  "warning",
    }, choices={"decode": DECODERS},
        renamed={"strict": "strict_data"})  # says whose strictness (mine's --strict is another)

    add(p.add_argument_group("logging and checkpoints"), TrainConfig, {
        "log_every": "steps between lines of RUN/metrics.jsonl",
        "ckpt_every": "steps between checkpoints (also at the end)",
        "keep_every": "keep checkpoints/step-N.pt every N steps (0 = none; default: %(default)s)",
        "progress": "show a progress bar",
        "peak_tflops": "per-device peak TFLOP/s for MFU (default: a table of known GPUs)",
    })


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
                       keep_every=args.keep_every, progress=args.progress,
                       peak_tflops=args.peak_tflops, data=data, optim=optim)


def run_train(args) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.data.dali import DaliUnavailable
    from mimic_fast.data.index import DataError
    from mimic_fast.train.trainer import NonFiniteLoss, SkipLimit, train

    try:
        train(config_from_args(args))
    except (DataError, DaliUnavailable, NonFiniteLoss, SkipLimit, ValueError) as exc:
        return user_error(args, exc)
    return 0


def run_eval(args) -> int:
    from mimic_fast.cli import user_error
    from mimic_fast.data.index import DataError
    from mimic_fast.train.evaluate import evaluate

    try:
        result = evaluate(args.checkpoint, data=args.data, split=args.split, batch_size=args.batch_size,
                          max_pairs=args.max_pairs, device=args.device, out=args.out,
                          num_images=args.num_images, seed=args.seed, num_workers=args.num_workers)
    except (DataError, FileNotFoundError, ValueError) as exc:
        return user_error(args, exc)
    print(summary_line(result))
    return 0


def summary_line(result: dict) -> str:
    """The printed result of ``eval``: both losses and the cross-view gain, the files."""
    where = f"{result['pairs']} {'held-out ' if result['split'] == 'holdout' else ''}pairs"
    if result["loss_shuffled_reference"] is None:
        gain = "no cross-view gain (single-view model)" if result["views"] == 1 else \
            "no cross-view gain (fewer than 2 pairs)"
    else:
        gain = (f"with a shuffled reference {result['loss_shuffled_reference']:.4f}, "
                f"cross-view gain {result['cross_view_gain']:+.4f}")
    seen = result["seen_in_training"]
    warn = f" [{seen} of them seen in training]" if seen else ""
    return (f"step {result['step']}: loss {result['loss']:.4f}, {gain} (pixel MSE "
            f"{result['pixel_mse']:.5f}) over {where}{warn}\n  {result['json']}\n  {result['png']}")


def register(subparsers) -> None:
    from mimic_fast.cli import add_dataclass_options
    from mimic_fast.train.config import DEVICES, EvalConfig

    p = subparsers.add_parser("train", help="pretrain CroCo / MAE on a mined dataset (bf16, DDP via torchrun)",
                              description="Pretrain CroCo / MAE on mined pairs. Multi-GPU: "
                              "torchrun --nproc_per_node N -m mimic_fast.train ARGS")
    add_train_arguments(p)
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval", help="reconstruction loss with the true and a shuffled reference view on "
        "held-out pairs, and a PNG grid",
        description="Reconstruction loss of a run on fixed per-pair masks (comparable across "
        "checkpoints): `loss` with each pair's own reference view, `loss_shuffled_reference` "
        "with another pair's, and cross_view_gain = their difference (> 0: the second view "
        "helps). Writes eval-STEP.json and eval-STEP.png.")
    e.add_argument("checkpoint", help="run folder or checkpoint file")
    e.add_argument("--data", default=None, help="dataset (default: the run's)")

    add_dataclass_options(e, EvalConfig, {
        "split": "auto = the run's held-out pairs when it had --holdout and the dataset is the "
                 "run's, else all pairs",
        "batch_size": "pairs per batch",
        "max_pairs": "evaluate the first N pairs only (default: all)",
        "device": "auto = cuda when torch sees a GPU, else cpu",
    }, choices={"split": ("auto", "holdout", "all"), "device": DEVICES})
    e.add_argument("--out", default=None, help="folder for eval-STEP.json/png (default: RUN/eval)")
    add_dataclass_options(e, EvalConfig, {
        "num_images": "pairs in the PNG grid",
        "seed": "seed of the fixed per-pair masks (default: %(default)s)",
        "num_workers": "loader processes (0 = in this process)",
    })
    e.set_defaults(func=run_eval)
