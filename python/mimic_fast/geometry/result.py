"""The result type of patch_overlap, shared by the kernels and the reference."""

from __future__ import annotations

from typing import Any, NamedTuple


class PatchOverlap(NamedTuple):
    """Patch correspondences between two views and their overlap score.

    Shapes are for a batch of B homographies; a single [3, 3] homography gives the same
    fields without the leading B. Arrays are numpy for numpy input and torch tensors on H's
    device for torch input.

    overlap: [B] float32, min(counts[:, 0] / P1, counts[:, 1] / P2); 0 when not valid.
    valid: [B] bool, False for a non-finite or singular H.
    forward: [B, P1] int32, view-2 patch matched to each view-1 patch after de-duplication,
        or -1.
    backward: [B, P2] int32, view-1 patch matched to each view-2 patch (through inv(H)), or -1.
    correspondences: [B, P1] int32, the stored direction (the one with fewer matches; the
        backward one, inverted, on a tie) keyed by view-1 patch: view-2 patch or -1.
    counts: [B, 2] int32, matched patches forward and backward.
    """

    overlap: Any
    valid: Any
    forward: Any
    backward: Any
    correspondences: Any
    counts: Any


class Homographies(NamedTuple):
    """RANSAC homographies of B pairs of matches (:func:`mimic_fast.find_homographies`).

    Arrays are numpy for numpy input and torch tensors on the input's device for torch input.

    H: [B, 3, 3] float64, maps src pixel (x, y) to dst, H[2, 2] = 1; zeros when not valid.
    inliers: [B, N] bool, matches within the threshold of H (padding False).
    num_inliers: [B] int32, inliers.sum(1).
    valid: [B] bool, False for fewer than 4 matches, non-finite coordinates, or no model with
        at least 4 inliers (collinear or repeated points).
    """

    H: Any
    inliers: Any
    num_inliers: Any
    valid: Any
