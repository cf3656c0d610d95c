"""Where a mining process runs its batched stages: one setting per process, like its thread
counts (set by :func:`mimic_fast.mining.worker.init_worker` in every worker, and around a
serial run in the driver).

None: the CPU default (OpenCV's matcher and SIFT on numpy, no torch). ``"cpu"``, ``"cuda"``:
the batched stages (:func:`mimic_fast.mining.evaluate.evaluate`: matching, RANSAC with
``--ransac native``, overlap) and the native SIFT (``--sift native``) on torch on that device.
Or a stage server (:class:`mimic_fast.mining.stage_server.StageClient`): this process sends
those stages to a server that holds the device for many processes (one per GPU: a Ray actor
with ``--engine ray``, a process beside the pool with the local engine,
:mod:`mimic_fast.mining.stage_service`), and computes nothing on a device itself
(:func:`stage_device` is None). The dataset does not depend on the setting: every stage
makes the same decisions everywhere.
"""

from __future__ import annotations

from typing import Any


class StageServerGone(RuntimeError):
    """The stage server this process sends its stages to is gone (it died, or the run ended).
    No fault of the unit being mined: the run stops (:func:`mimic_fast.mining.worker.
    stops_the_run`), and the same command continues it."""


_setting: Any = None  # None | device name | a StageClient


def set_stage_device(device: Any) -> Any:
    """Set this process's stage setting (None, a device name, or a stage server's client);
    returns the previous one."""
    global _setting
    previous, _setting = _setting, device
    return previous


def stage_device() -> str | None:
    """The device this process runs its stages on itself: None (the CPU default, also when a
    stage server runs them), or a torch device name."""
    return None if remote_stages() is not None else _setting


def remote_stages():
    """The stage server this process sends its batched stages to (a
    :class:`~mimic_fast.mining.stage_server.StageClient`: ``.evaluate(pairs, cfg)``,
    ``.sift(gray)``), or None when it runs them itself."""
    return None if _setting is None or isinstance(_setting, str) else _setting


def is_cuda(device: Any) -> bool:
    """Whether a stage device (a name such as "cuda:1", or a torch.device) is a GPU."""
    return device is not None and str(device).split(":")[0] == "cuda"


def resolve(run_device: str) -> str | None:
    """The stage device for RunOptions.device: "auto" and "cpu" -> None (auto stays on the
    CPU until the GPU path has run on a GPU once); "cuda" -> "cuda", or ValueError (one line)
    when this machine cannot run it."""
    if run_device != "cuda":
        return None
    import mimic_fast

    config = mimic_fast.build_config()
    if not config.get("cuda"):
        raise ValueError("--device cuda: this build of mimic_fast has no CUDA kernels "
                         "(rebuild with nvcc, MIMIC_FAST_CUDA=ON); use --device cpu")
    if not config.get("cuda_devices"):
        raise ValueError("--device cuda: no CUDA GPU is visible; use --device cpu")
    try:
        import torch
    except ImportError:
        raise ValueError("--device cuda needs torch with CUDA: pip install "
                         "'mimic-fast[torch]'") from None
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU (a CPU-only torch?); use "
                         "--device cpu")
    return "cuda"
