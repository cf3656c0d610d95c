"""Training settings as dataclasses; the CLI fills them, ``RUN/config.json`` records them.

On a rerun into an existing run folder the saved config wins, except for the fields in
:data:`MAY_CHANGE` (how long and how to run, not what is trained); any other difference is
refused with the list of differences, so a resume can never silently train something else.
``data.path`` may change so that a dataset can move, but the checkpoint records a fingerprint
of the dataset's content (:func:`mimic_fast.data.index.dataset_fingerprint`) and a resume on
other data is refused.

The defaults live here (the CLI shows and uses these values). Optimizer fields left ``None``
are decided once, when a run starts (:func:`resolve_new_run`): the model preset's own
settings where it has them (:data:`PRESET_OPTIM`: the tiny presets), else the MAE/CroCo ones;
the decided values are what ``config.json`` records, and ``None`` on a rerun means "keep the
run's".
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from mimic_fast.data.config import DataConfig

PRECISIONS = ("auto", "bf16", "fp32")
DEVICES = ("auto", "cpu", "cuda")

# Fields a rerun may change without being a different run.
MAY_CHANGE = frozenset({
    "max_steps", "log_every", "ckpt_every", "keep_every", "progress", "compile", "peak_tflops",
    "device", "out", "data.num_workers", "data.prefetch_factor", "data.decode", "data.path",
    "data.strict",
})
# Optimizer fields that, left unset (None) on a rerun, keep the run's value.
UNSET_KEEPS_SAVED = ("optim.blr", "optim.lr", "optim.warmup_steps", "optim.schedule_steps")
BLR = 1.5e-4  # MAE / CroCo base lr (lr = blr * effective batch / 256)
WARMUP_FRACTION = 0.05  # of the schedule, when neither the run nor the preset sets warmup
# Optimizer settings a model preset brings when the run sets none. The MAE/CroCo rule
# lr = blr * batch / 256 suits the large presets at batch 256+, but gives the tiny ones
# 2.3e-6 at a CPU smoke run's batch of 4: nothing visibly learns. A fixed lr with a short
# warmup makes a few hundred CPU steps show the loss fall (benchmarks/RESULTS.md).
PRESET_OPTIM: dict[str, dict] = {
    "croco_test": {"lr": 1.0e-3, "warmup_steps": 20},
    "mae_test": {"lr": 1.0e-3, "warmup_steps": 20},
}


@dataclass(frozen=True)
class OptimConfig:
    blr: float | None = None  # base lr: lr = blr * effective_batch / 256 unless lr is given;
    # None: the preset's lr where it has one (tiny presets), else BLR
    lr: float | None = None  # absolute peak lr (overrides blr)
    min_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.05  # not on biases, norms and other 1-D parameters
    warmup_steps: int | None = None  # None: the preset's, else 5% of schedule_steps
    schedule_steps: int | None = None  # length of warmup + half-cosine; None: max_steps of the
    # first run (saved, so re-running with a larger --max-steps keeps the schedule)
    grad_clip: float | None = None  # max global grad norm (None: no clipping, as CroCo/MAE)

    def __post_init__(self) -> None:
        if any(v is not None and not v > 0 for v in (self.blr, self.lr)):
            raise ValueError(f"learning rates must be > 0, got blr={self.blr}, lr={self.lr}")
        if self.min_lr < 0 or self.weight_decay < 0:
            raise ValueError(f"min_lr and weight_decay must be >= 0, got {self.min_lr}, {self.weight_decay}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule_steps is not None and self.schedule_steps < 1:
            raise ValueError(f"schedule_steps must be >= 1, got {self.schedule_steps}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be > 0, got {self.grad_clip}")


@dataclass(frozen=True)
class TrainConfig:
    out: str  # run folder: config.json, checkpoint.pt, metrics.jsonl, tb/
    model: str = "croco_base"
    pos_embed: str = "cosine"  # cosine | rope100
    attn_impl: str = "auto"  # auto | triton | torch
    img_size: int | None = None  # None: the model preset's (224)
    max_steps: int = 1000  # optimizer steps to reach (a rerun resumes and continues to this)
    batch_size: int = 64  # pairs per micro-batch per process
    accum: int = 1  # micro-batches per optimizer step; effective batch = batch * accum * world
    device: str = "auto"  # auto (cuda when available) | cpu | cuda
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp32
    compile: bool = False
    seed: int = 0
    log_every: int = 10
    ckpt_every: int = 500  # also at the end of the run
    keep_every: int = 0  # also keep checkpoints/step-NNNNNNNN.pt every this many steps (0: no)
    progress: bool = True
    peak_tflops: float | None = None  # per device, for MFU (None: a table of known GPUs)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, got {self.device!r}")
        for name in ("max_steps", "batch_size", "accum", "log_every", "ckpt_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.keep_every < 0:
            raise ValueError(f"keep_every must be >= 0, got {self.keep_every}")

    # --- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        d = dict(d)
        d["data"] = DataConfig.from_dict(d.get("data", {}))
        optim = dict(d.get("optim", {}))
        if "betas" in optim:
            optim["betas"] = tuple(optim["betas"])
        d["optim"] = OptimConfig(**optim)
        return cls(**d)

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class EvalConfig:
    """Defaults of ``mimic-fast eval`` (:func:`mimic_fast.train.evaluate.evaluate`)."""

    split: str = "auto"  # auto: the run's held-out pairs when it had a holdout, else all
    batch_size: int = 16
    max_pairs: int | None = None  # None: every pair of the split
    device: str = "auto"
    num_images: int = 8  # pairs in the PNG grid
    seed: int = 0  # key of the fixed per-pair masks
    num_workers: int = 2


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def reconcile(saved: TrainConfig, new: TrainConfig) -> TrainConfig:
    """The config of a resumed run: ``saved`` with the fields a rerun may change taken from
    ``new``; a field of :data:`UNSET_KEEPS_SAVED` that is None in ``new`` keeps the saved
    value. Raises ValueError listing every other difference."""
    a, b = flat(saved.to_dict()), flat(new.to_dict())
    for k in UNSET_KEEPS_SAVED:
        if b[k] is None:
            b[k] = a[k]
    diffs = [f"{k}: {a[k]!r} -> {b[k]!r}" for k in a if k not in MAY_CHANGE and a[k] != b.get(k)]
    if diffs:
        raise ValueError(f"run folder {new.out} was started with other settings ("
                         + "; ".join(diffs) + "); use the same settings to resume or a new --out")
    keep = {k: b[k] for k in MAY_CHANGE}
    merged = dict(a, **keep)
    return TrainConfig.from_dict(unflat(merged))


def resolve_new_run(cfg: TrainConfig) -> TrainConfig:
    """A new run's config with every default decided: absolute paths (so ``eval`` works
    from any directory), the schedule's length (``max_steps``), and the optimizer fields left
    None from the model preset (:data:`PRESET_OPTIM`) or the MAE/CroCo defaults."""
    o = cfg.optim
    preset = dict(PRESET_OPTIM.get(cfg.model, {}))
    if o.lr is not None or o.blr is not None:  # the run chose its lr
        preset.pop("lr", None)
    schedule = o.schedule_steps if o.schedule_steps is not None else cfg.max_steps
    warmup = o.warmup_steps if o.warmup_steps is not None else min(schedule, preset.get(
        "warmup_steps", round(WARMUP_FRACTION * schedule)))
    optim = dataclasses.replace(o, lr=o.lr if o.lr is not None else preset.get("lr"),
                                blr=o.blr if o.blr is not None else BLR,
                                warmup_steps=warmup, schedule_steps=schedule)
    return absolute_paths(cfg).replace(optim=optim)


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with its run folder and local dataset path made absolute (URLs unchanged)."""
    from mimic_fast.dataset.paths import resolve_data_path

    data = cfg.data
    if data.path and resolve_data_path(data.path).kind != "urls":
        data = dataclasses.replace(data, path=os.path.abspath(data.path.removeprefix("file://")))
    return cfg.replace(out=os.path.abspath(cfg.out), data=data)


def unflat(d: dict) -> dict:
    out: dict = {}
    for k, v in d.items():
        node = out
        *parents, leaf = k.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return out


def write_config(cfg: TrainConfig, path: Path, extra: dict | None = None) -> None:
    from mimic_fast.train.checkpoint import write_text_atomic

    payload = {"train": cfg.to_dict(), **(extra or {})}
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def read_config(path: Path) -> TrainConfig:
    return TrainConfig.from_dict(json.loads(Path(path).read_text())["train"])
