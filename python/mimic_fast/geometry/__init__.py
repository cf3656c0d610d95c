"""Two-view geometry: patch correspondences (patch_overlap) and batched RANSAC homographies
(find_homographies), with their numpy reference twins (reference, reference_ransac)."""

from mimic_fast.geometry.overlap import keep_pair, patch_overlap
from mimic_fast.geometry.ransac import find_homographies
from mimic_fast.geometry.result import Homographies, PatchOverlap

__all__ = ["Homographies", "PatchOverlap", "find_homographies", "keep_pair", "patch_overlap"]
