"""Where a mining process runs its batched stages: one setting per process, like its thread
counts (set by :func:`mimic_fast.mining.worker.init_worker` in every worker, and around a
serial run in the driver).

None: the CPU default (OpenCV's matcher and SIFT on numpy, no torch). ``"cuda"``: the batched
stages (:func:`mimic_fast.mining.evaluate.evaluate`: matching, RANSAC with ``--ransac
native``, overlap) and the native SIFT (``--sift native``) on the GPU. The dataset does not
depend on it: every stage makes the same decisions on both devices.
"""

from __future__ import annotations

_device: str | None = None


def set_stage_device(device: str | None) -> str | None:
    """Set this process's stage device; returns the previous one."""
    global _device
    previous, _device = _device, device
    return previous


def stage_device() -> str | None:
    return _device


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
