"""Loading of the native module ``mimic_fast._C`` and what the Python side knows about it.

``_C`` takes raw pointers only (it never links libtorch); the wrappers in the subpackages
validate inputs, allocate outputs and pass addresses. Loading is lazy so that importing
mimic_fast never needs the native build (pure-Python parts stay usable while it is missing).
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any


@functools.cache
def native() -> ModuleType:
    """The compiled module; a clear ImportError when the package was not built."""
    try:
        from mimic_fast import _C
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "mimic_fast's native module _C is missing or failed to load "
            f"({exc}); install the package with `pip install -e .` (see README)"
        ) from exc
    return _C


def build_config() -> dict[str, Any]:
    """What the native module was built with: version, OpenMP threads, CUDA and its arches,
    the C++ compiler; plus ``cuda_devices``, the CUDA devices visible now (0 without a GPU)."""
    info = dict(native().build_info())
    info["cuda_devices"] = int(native().cuda_device_count()) if info["cuda"] else 0
    return info


def set_num_threads(n: int) -> None:
    """Threads used by the CPU kernels (OpenMP), like ``torch.set_num_threads``."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"num_threads must be an int >= 1, got {n!r}")
    native().set_num_threads(n)


def get_num_threads() -> int:
    """Threads the CPU kernels use."""
    return int(native().get_num_threads())


def require_cuda() -> None:
    """Raise a RuntimeError unless CUDA kernels were built and a GPU is visible."""
    info = native().build_info()
    if not info["cuda"]:
        raise RuntimeError(
            "device='cuda' was requested but mimic_fast was built without CUDA "
            "(mimic_fast.build_config()['cuda'] is False); rebuild where nvcc is available "
            "or use device='cpu'"
        )
    if native().cuda_device_count() < 1:
        raise RuntimeError(
            "device='cuda' was requested but no CUDA device is visible "
            "(mimic_fast was built with CUDA, but cudaGetDeviceCount found none)"
        )
