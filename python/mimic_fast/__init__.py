"""mimic_fast: fast MIMIC multi-view pair mining and CroCo/MAE pretraining.

The public API is this module; everything else is private or lives in a named subpackage
(``mimic_fast.mining``, ``mimic_fast.models``, ``mimic_fast.kernels``, ``mimic_fast.train``).
The native module ``mimic_fast._C`` is loaded on first use, so importing never needs it.
"""

from mimic_fast._native import build_config, get_num_threads, set_num_threads
from mimic_fast.geometry.overlap import PatchOverlap, keep_pair, patch_overlap
from mimic_fast.geometry.ransac import find_homographies
from mimic_fast.geometry.result import Homographies

__version__ = "0.1.0"

# torch-based entry points, imported on first use so that `import mimic_fast` (and the CLI's
# help) never loads torch: name -> module that defines it
_LAZY = {
    "match_descriptors": "mimic_fast.features.batched_matching",
    "sift": "mimic_fast.features.batched_sift",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mimic_fast' has no attribute {name!r}")


__all__ = [
    "Homographies",
    "PatchOverlap",
    "build_config",
    "find_homographies",
    "get_num_threads",
    "keep_pair",
    "match_descriptors",
    "patch_overlap",
    "set_num_threads",
    "sift",
]
