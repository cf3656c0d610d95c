"""Checkpoints: atomic writes, everything needed to continue exactly.

``RUN/checkpoint.pt`` (the last good one) holds::

    {"format": "mimic-fast-train", "version": 1,
     "step": optimizer steps done, "model": state_dict (unwrapped, uncompiled),
     "optimizer": state_dict, "schedule": {"peak_lr", "warmup", "total", "min_lr"},
     "data": {"micro_batches": consumed per rank, "batch_size", "world_size", "num_workers",
              "reader", "samples": pairs seen (all ranks), "skipped",
              "fingerprint": the dataset's content (resume refuses other data),
              "stream_pos": streaming reader: [per rank: [per worker: stream items consumed]]},
     "rng": [per rank: {"python", "numpy", "torch", "cuda"}], "config": TrainConfig dict}

It is written to a temporary file in the same folder, flushed and fsynced, then renamed over
the old one (and the folder fsynced), so a crash leaves either the old or the new file.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

FORMAT = "mimic-fast-train"
VERSION = 1
NAME = "checkpoint.pt"


def write_bytes_atomic(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, lambda f: f.write(text.encode()))


def rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],  # plain types: the file
             "torch": torch.get_rng_state()}  # loads with torch.load(weights_only=True)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(path: Path, payload: dict) -> None:
    payload = {"format": FORMAT, "version": VERSION, **payload}
    write_bytes_atomic(path, lambda f: torch.save(payload, f))


def load(path: Path, map_location="cpu") -> dict:
    """A checkpoint file, or the last checkpoint of a run folder."""
    path = Path(path)
    if path.is_dir():
        path = path / NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path} is not a mimic-fast training checkpoint")
    return ckpt
