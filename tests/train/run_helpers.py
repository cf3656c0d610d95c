"""Running `mimic-fast train` in tests: tiny, quick, deterministic settings."""

from __future__ import annotations

import json
from pathlib import Path


QUICK_OPTIM = ("--lr", "1e-3", "--warmup-steps", "2")  # a short warmup for runs of a few steps


def train_args(data: Path, out: Path, *, model: str = "croco_test", steps: int = 6, batch: int = 4,
               extra: tuple[str, ...] = (), optim: tuple[str, ...] = QUICK_OPTIM) -> list[str]:
    """``optim=()``: the preset's own optimizer settings."""
    return ["train", "--data", str(data), "--model", model, "--out", str(out),
            "--max-steps", str(steps), "--batch-size", str(batch), "--device", "cpu",
            "--seed", "0", *optim, "--log-every", "1", "--num-workers", "0", "--no-progress",
            *extra]


def run_cli(args: list[str]) -> int:
    from mimic_fast.cli import main

    return main(args)


def losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
