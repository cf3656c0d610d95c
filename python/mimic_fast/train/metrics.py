"""Where logged numbers go: ``RUN/metrics.jsonl`` (one JSON object per logged step),
TensorBoard (``RUN/tb``, when tensorboard is installed) and MFU accounting."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

# Dense bf16 tensor-core peak per GPU, TFLOP/s (matched by substring of the device name).
PEAK_BF16_TFLOPS = (
    ("H200", 989.0), ("H100", 989.0), ("H800", 989.0), ("GH200", 989.0), ("B200", 2250.0),
    ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("A6000", 154.8), ("4090", 165.2),
    ("A10", 125.0), ("L4", 121.0),
)


def peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    """Peak FLOP/s of one device for MFU, or None when unknown (CPU, unlisted GPU)."""
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS:
        if key in name:
            return tflops * 1e12
    log.warning("peak FLOP/s of %r unknown: MFU not reported (give --peak-tflops)", name)
    return None


class MetricsLog:
    """Append-only metrics of the main process; truncated to the resume step on resume."""

    def __init__(self, out: Path, start_step: int, enabled: bool):
        self.path = Path(out) / "metrics.jsonl"
        self.enabled = enabled
        self.tb = None
        if not enabled:
            return
        if self.path.exists():  # drop lines logged after the checkpoint we resume from
            from mimic_fast.train.checkpoint import write_text_atomic

            keep = []
            for line in self.path.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    step = json.loads(line)["step"]
                except (ValueError, KeyError, TypeError):  # a crash mid-append: drop the rest
                    log.warning("%s: dropping an unreadable line and what follows it", self.path)
                    break
                if step <= start_step:
                    keep.append(line)
            write_text_atomic(self.path, "".join(line + "\n" for line in keep))
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(out) / "tb"), purge_step=start_step + 1)
        except ImportError:
            log.warning("tensorboard is not installed: logging to metrics.jsonl only "
                        "(pip install 'mimic-fast[train]')")

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)) and v is not None:
                    self.tb.add_scalar(f"train/{k}", v, record["step"])

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
