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

__all__ = [
    "Homographies",
    "PatchOverlap",
    "build_config",
    "find_homographies",
    "get_num_threads",
    "keep_pair",
    "patch_overlap",
    "set_num_threads",
]
