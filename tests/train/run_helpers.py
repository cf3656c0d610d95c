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


def holdout_fraction(dataset: Path, pairs: int) -> float:
    """The --holdout fraction that holds out exactly the ``pairs`` pairs whose keys hash
    lowest (index.holdout_rows: crc32(key) < int(fraction * 2**32)). Keys name their source by
    its absolute path, so a fixed fraction holds out a different number of a small dataset's
    pairs wherever ../shared lies (one pair of mined_tum in a CI clone, where two were
    needed)."""
    import zlib

    keys = [json.loads(line)["key"] for line in (dataset / "index.jsonl").read_text().splitlines()
            if line.strip()]
    hashes = sorted(zlib.crc32(k.encode()) for k in keys)
    assert len(hashes) > pairs + 2, "too few pairs to hold some out and train on the rest"
    return (hashes[pairs - 1] + 1) / 2**32
