"""The training loop: bf16 autocast, DDP from the torchrun environment, gradient accumulation,
AdamW with warmup + half-cosine, atomic checkpoints, exact resume, no per-step host syncs.

The loop keeps everything it reports on the device (loss sum, first non-finite step) and
reads it back only every ``log_every`` steps and before each checkpoint; a checkpoint is
written only after that check passed, so the last checkpoint is always a good one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from mimic_fast._output_folder import FolderLock, remove_dead_temporaries
from mimic_fast.data.index import dataset_fingerprint
from mimic_fast.data.pipeline import train_batches
from mimic_fast.data.transforms import normalize
from mimic_fast.train import checkpoint as ckpt_io
from mimic_fast.train import distributed
from mimic_fast.train.config import (PRESET_OPTIM, TrainConfig, absolute_paths, read_config,
                                     reconcile, resolve_new_run, write_config)
from mimic_fast.train.metrics import MetricsLog, peak_flops
from mimic_fast.train.optim import make_optimizer
from mimic_fast.train.schedule import lr_at, peak_lr, warmup_steps

log = logging.getLogger(__name__)


TINY_LR = 1.0e-5  # below this peak lr a short run shows no learning: warn


class NonFiniteLoss(RuntimeError):
    """The loss became NaN or inf; the run stopped and the last good checkpoint was kept."""


class SkipLimit(RuntimeError):
    """Too many unreadable samples."""


def build_model(cfg: TrainConfig):
    from mimic_fast.models import create_model

    overrides = {"img_size": cfg.img_size} if cfg.img_size else {}
    return create_model(cfg.model, pos_embed=cfg.pos_embed, attn_impl=cfg.attn_impl, **overrides)


def forward_loss(model, batch: dict, device: torch.device, two_views: bool, autocast,
                 generator: torch.Generator | None) -> torch.Tensor:
    """One micro-batch: uint8 views to the device, normalised there; the loss (fp32 scalar)."""
    target = normalize(batch["target"].to(device, non_blocking=True))
    if "mask" in batch:
        kwargs = {"mask": batch["mask"].to(device, non_blocking=True)}
    else:
        kwargs = {"generator": generator}
    with autocast:
        if two_views:
            reference = normalize(batch["reference"].to(device, non_blocking=True))
            loss, _, _ = model(target, reference, **kwargs)
        else:
            loss, _, _ = model(target, **kwargs)
    return loss.float()


def _resolve(cfg: TrainConfig, info: distributed.DistInfo) -> TrainConfig:
    """The run's config: the saved one when resuming (checked against ``cfg``), else ``cfg``
    with the schedule length fixed; written to RUN/config.json."""
    out = Path(cfg.out)
    saved_path = out / "config.json"
    if saved_path.is_file():
        cfg = reconcile(read_config(saved_path), cfg)
    else:
        if (out / ckpt_io.NAME).exists():
            raise ValueError(f"{out} has a checkpoint but no config.json; cannot resume safely")
        cfg = resolve_new_run(cfg)
    distributed.barrier(info)  # every rank has read the old config before it is rewritten
    if info.is_main:
        import mimic_fast

        write_config(cfg, saved_path, {"world_size": info.world, "torch": torch.__version__,
                                       "mimic_fast": getattr(mimic_fast, "__version__", None)})
    return cfg


def train(cfg: TrainConfig) -> dict:
    """Train (or resume) the run in ``cfg.out``; returns the summary (also RUN/summary.json).
    The model name, the device and the dataset are checked before anything is written."""
    cfg = absolute_paths(cfg)
    check_before_writing(cfg)
    info = distributed.setup(cfg.device)
    try:
        with _own_run_folder(Path(cfg.out), info):
            return _train(cfg, info)
    finally:
        distributed.teardown()


def check_before_writing(cfg: TrainConfig) -> None:
    """Raise ValueError / DataError on a mistake in the arguments that would otherwise show
    only after the run folder exists: an unknown model or option, no GPU for ``--device cuda``,
    a missing or empty dataset."""
    from mimic_fast.models.registry import model_config

    model_config(cfg.model, pos_embed=cfg.pos_embed, attn_impl=cfg.attn_impl,
                 **({"img_size": cfg.img_size} if cfg.img_size else {}))
    distributed.resolve_device(cfg.device)
    dataset_fingerprint(cfg.data.path)


@contextlib.contextmanager
def _own_run_folder(out: Path, info: distributed.DistInfo):
    """Rank 0 holds the run folder for the whole run (a second run into it stops at once) and
    first deletes the checkpoint temporaries of killed runs."""
    if not info.is_main:
        yield
        return
    with FolderLock(out):
        remove_dead_temporaries(out, out / "checkpoints")
        yield


def _train(cfg: TrainConfig, info: distributed.DistInfo) -> dict:
    out = Path(cfg.out)
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
    distributed.barrier(info)
    cfg = _resolve(cfg, info)
    if cfg.max_steps > cfg.optim.schedule_steps and info.is_main:
        log.warning("max_steps %d is past the schedule's %d steps: the steps beyond run at "
                    "min_lr %g (plan a longer run with --schedule-steps)", cfg.max_steps,
                    cfg.optim.schedule_steps, cfg.optim.min_lr)
    device = info.device
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    torch.manual_seed(cfg.seed)  # identical initial weights on every rank
    model = build_model(cfg).to(device)
    two_views = model.cfg.arch == "croco"
    effective_batch = cfg.batch_size * cfg.accum * info.world
    schedule = {"peak_lr": peak_lr(cfg.optim.blr, cfg.optim.lr, effective_batch),
                "warmup": warmup_steps(cfg.optim.warmup_steps, cfg.optim.schedule_steps),
                "total": cfg.optim.schedule_steps, "min_lr": cfg.optim.min_lr}
    optimizer = make_optimizer(model, schedule["peak_lr"], cfg.optim.weight_decay,
                               cfg.optim.betas, device.type)

    # Per-rank random streams (the data's randomness is keyed per pair, not drawn from these).
    random.seed(cfg.seed + info.rank)
    np.random.seed((cfg.seed + info.rank) % 2**32)
    torch.manual_seed(cfg.seed + info.rank)
    step, samples, skipped_total = 0, 0, 0
    data_position = None  # where this rank's batches resume (BatchSource.state_dict())
    saved_fingerprint = None
    ckpt_path = out / ckpt_io.NAME
    if ckpt_path.is_file():
        state = ckpt_io.load(ckpt_path)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
        schedule = state["schedule"] | {"total": cfg.optim.schedule_steps}
        d = state["data"]
        saved_fingerprint = d.get("fingerprint")  # None: a checkpoint from before fingerprints
        data_position = dict(d, stream_pos=d["stream_pos"][info.rank]
                             if d.get("stream_pos") and len(d["stream_pos"]) > info.rank else None)
        samples, skipped_total = d["samples"], d["skipped"]
        if len(state["rng"]) == info.world:
            ckpt_io.set_rng_state(state["rng"][info.rank])
        log.info("resuming %s at step %d (%d micro-batches consumed per rank)", out, step,
                 d["micro_batches"])
    steps = distributed.all_gather_object(step, info)
    if len(set(steps)) > 1:
        raise RuntimeError(f"ranks resume from different steps {steps}: the run folder {out} must "
                           "be on a filesystem every node sees")
    if step >= cfg.max_steps:
        log.info("%s is already at step %d >= max_steps %d: nothing to do", out, step, cfg.max_steps)
        return {"step": step, "max_steps": cfg.max_steps, "last": None, "world_size": info.world}
    fingerprint = dataset_fingerprint(cfg.data.path)
    if saved_fingerprint not in (None, fingerprint):
        raise ValueError(
            f"the dataset at {cfg.data.path} is not the one run {out} was trained on (shards or "
            f"CSV differ: fingerprint {fingerprint}, the run's {saved_fingerprint}); resuming "
            "would continue the data order into other data. Point --data at the original "
            "dataset (it may have moved) or use a new --out")

    index_cache = out / "data-index.npz"
    if info.is_main:  # build (or check) the index once, the other ranks load it
        _batches(cfg, model, two_views, info, index_cache, dry=True)
    distributed.barrier(info)
    batches = _batches(cfg, model, two_views, info, index_cache)
    if data_position is not None:
        batches.load_state_dict(data_position)
    generator = None
    if not batches.masks_in_batch:
        generator = torch.Generator(device=device)
        generator.manual_seed(cfg.seed * 1_000_003 + info.rank * 7919 + step)

    net = ddp = model  # `model` stays the raw module: its state_dict is what is saved
    if info.world > 1:
        net = ddp = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None,
            find_unused_parameters=False, gradient_as_bucket_view=True)
    if cfg.compile:  # compile(DDP(m)): dynamo splits the graph at DDP's buckets (overlap kept)
        net = torch.compile(net)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    flops = model.flops_per_sample() if hasattr(model, "flops_per_sample") else None
    peak = peak_flops(device, cfg.peak_tflops)
    metrics = MetricsLog(out, step, info.is_main)
    if cfg.optim.lr is None:
        lr_rule = f"blr {cfg.optim.blr:g} x {effective_batch} / 256"
    else:
        lr_rule = ("the preset's" if cfg.optim.lr == PRESET_OPTIM.get(cfg.model, {}).get("lr")
                   else "fixed")
    log.info("training %s on %d %s device(s): %d pairs per step (%d x %d accum x %d ranks), "
             "peak lr %.3g (%s, warmup %d), %s, steps %d -> %d", cfg.model, info.world,
             device.type, effective_batch, cfg.batch_size, cfg.accum, info.world,
             schedule["peak_lr"], lr_rule, schedule["warmup"], "bf16 autocast" if bf16 else "fp32",
             step, cfg.max_steps)
    if schedule["peak_lr"] < TINY_LR and info.is_main:
        log.warning("peak lr %.2g is too small to see a model learn in a short run (the "
                    "blr rule at a small batch); set --lr, e.g. 1e-3 for the *_test presets",
                    schedule["peak_lr"])

    loss_sum = torch.zeros((), device=device)
    bad_step = torch.full((), -1, dtype=torch.long, device=device)
    window_steps, window_skipped, last = 0, 0, None
    t_last = time.perf_counter()
    bar = _progress(cfg, step, info)
    net.train()
    try:
        while step < cfg.max_steps:
            lr = lr_at(step, schedule["peak_lr"], schedule["warmup"], schedule["total"], schedule["min_lr"])
            for group in optimizer.param_groups:
                group["lr"] = lr
            step_loss = torch.zeros((), device=device)
            for micro in range(cfg.accum):
                batch = next(batches)
                window_skipped += int(batch["skipped"].sum())  # a CPU tensor: no device sync
                sync = info.world == 1 or micro == cfg.accum - 1
                ctx = contextlib.nullcontext() if sync else ddp.no_sync()
                with ctx:
                    loss = forward_loss(net, batch, device, two_views, autocast, generator)
                    (loss / cfg.accum).backward()
                step_loss += loss.detach()
            if cfg.optim.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_loss /= cfg.accum
            bad_step = torch.where((bad_step < 0) & ~torch.isfinite(step_loss),
                                   torch.full_like(bad_step, step + 1), bad_step)
            loss_sum += step_loss
            step += 1
            window_steps += 1
            samples += effective_batch
            bar.update(1)

            due_ckpt = step % cfg.ckpt_every == 0 or step == cfg.max_steps
            if step % cfg.log_every == 0 or due_ckpt:
                # The only host sync: every log_every steps and before a checkpoint.
                mean_loss, skipped, first_bad = _reduce(loss_sum, window_skipped, bad_step, info)
                skipped_total += skipped
                if first_bad >= 0 or not math.isfinite(mean_loss / window_steps):
                    raise NonFiniteLoss(
                        f"loss became non-finite at step {first_bad if first_bad >= 0 else step}; "
                        f"stopped at step {step}. The last good checkpoint is kept: "
                        f"{ckpt_path if ckpt_path.exists() else 'none written yet'}")
                _check_skips(skipped_total, samples, cfg)
                now = time.perf_counter()
                pairs_s = window_steps * effective_batch / (now - t_last)
                last = {"step": step, "loss": mean_loss / window_steps, "lr": lr,
                        "pairs_per_s": pairs_s,
                        "mfu": (3 * flops * pairs_s / (peak * info.world)) if flops and peak else None,
                        "samples": samples, "skipped": skipped_total, "time": time.time()}
                metrics.write(last)
                bar.set_postfix(loss=f"{last['loss']:.4f}", pairs_s=f"{pairs_s:.1f}")
                loss_sum.zero_()
                window_steps, window_skipped, t_last = 0, 0, now
            if due_ckpt:
                _save(ckpt_path, model, optimizer, step, schedule, batches.state_dict(), samples,
                      skipped_total, cfg, info, fingerprint)
                if cfg.keep_every and step % cfg.keep_every == 0 and info.is_main:
                    _keep_copy(ckpt_path, out / "checkpoints" / f"step-{step:08d}.pt")
                t_last = time.perf_counter()  # do not count the checkpoint in pairs/s
    finally:
        bar.close()
        metrics.close()
    return _summary(out, cfg, step, last, batches, info)


def _keep_copy(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically (a temporary file beside ``dst``, then renamed)."""
    import shutil

    def copy(f):
        with open(src, "rb") as s:
            shutil.copyfileobj(s, f, 1 << 24)

    ckpt_io.write_bytes_atomic(dst, copy)


def _batches(cfg, model, two_views, info, index_cache, dry=False):
    if dry:  # only builds/validates the index cache (local shard folders)
        from mimic_fast.data.index import open_index
        from mimic_fast.dataset.paths import is_url

        if not cfg.data.streaming and not is_url(cfg.data.path):
            open_index(cfg.data.path, index_cache if not str(cfg.data.path).endswith(".csv") else None)
        return None
    mcfg = model.cfg
    return train_batches(cfg.data, img_size=mcfg.img_size, num_patches=mcfg.num_patches,
                         num_masked=mcfg.num_masked, two_views=two_views,
                         batch_size=cfg.batch_size, rank=info.rank, world=info.world,
                         seed=cfg.seed, device=info.device.type,
                         device_id=info.local_rank, index_cache=index_cache)


def _reduce(loss_sum, skipped: int, bad_step, info) -> tuple[float, int, int]:
    vals = torch.stack([loss_sum.double(), torch.tensor(float(skipped), dtype=torch.float64,
                                                         device=loss_sum.device)])
    bad = bad_step.clone()
    if info.world > 1:
        dist.all_reduce(vals)
        dist.all_reduce(bad, op=dist.ReduceOp.MAX)
        vals[0] /= info.world
    loss, skip = vals.tolist()
    return loss, int(skip), int(bad.item())


def _check_skips(skipped: int, samples: int, cfg: TrainConfig) -> None:
    if skipped > max(10, cfg.data.max_skip_fraction * samples):
        raise SkipLimit(f"{skipped} unreadable pairs replaced out of {samples} read, above the "
                        f"limit ({cfg.data.max_skip_fraction:.1%}); the dataset looks corrupt")


def _save(path, model, optimizer, step, schedule, position, samples, skipped, cfg, info,
          fingerprint):
    """position: this rank's BatchSource.state_dict(); its stream positions are gathered
    from every rank (one list per rank), the rest is the same on every rank."""
    gathered = distributed.all_gather_object((ckpt_io.rng_state(), position["stream_pos"]), info)
    rngs = [g[0] for g in gathered]
    if not info.is_main:
        return
    ckpt_io.save(path, {
        "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "schedule": schedule,
        "data": dict(position, batch_size=cfg.batch_size, samples=samples, skipped=skipped,
                     fingerprint=fingerprint,
                     stream_pos=[g[1] for g in gathered] if position["stream_pos"] else None),
        "rng": rngs, "config": cfg.to_dict(),
    })
    log.debug("checkpoint at step %d -> %s", step, path)


def _progress(cfg, step, info):
    from tqdm import tqdm

    return tqdm(total=cfg.max_steps, initial=step, desc="train", unit="step",
                disable=not (cfg.progress and info.is_main), dynamic_ncols=True)


def _summary(out, cfg, step, last, batches, info) -> dict:
    summary = {"step": step, "max_steps": cfg.max_steps, "last": last,
               "dataset_pairs": batches.pairs, "lost_pairs": batches.lost_pairs,
               "world_size": info.world}
    if info.is_main:
        ckpt_io.write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        if last:
            log.info("done: step %d, loss %.4f, %.1f pairs/s%s", step, last["loss"], last["pairs_per_s"],
                     f", MFU {last['mfu']:.1%}" if last["mfu"] else "")
        if batches.lost_pairs:
            log.warning("%d pairs of damaged shards were left out of this run (see the warnings "
                        "above; `mimic-fast verify DATASET` lists them)", batches.lost_pairs)
    return summary
