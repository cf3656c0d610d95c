"""The published method's patch correspondences, as a baseline to measure against.

Written here from the MIMIC paper's description (Appendix 8.2) and the shape of its reference
code: Python loops over patches and sample points, one ``cv2.perspectiveTransform`` call per
point, a Counter vote per patch, first-come de-duplication. It is deliberately not optimised:
it is what users run today.
"""

from __future__ import annotations

from collections import Counter

import cv2
import numpy as np


def published_patch_overlap(H: np.ndarray, size: int = 224, patch: int = 16,
                            samples: int = 100, rng: np.random.Generator | None = None):
    """(overlap, correspondences dict view-1 patch -> view-2 patch) for one 3x3 H."""
    rng = rng or np.random.default_rng(0)
    fwd = _one_direction(np.asarray(H, np.float64), size, patch, samples, rng)
    bwd = _one_direction(np.linalg.inv(H), size, patch, samples, rng)
    n = (size // patch) ** 2
    overlap = min(len(fwd) / n, len(bwd) / n)
    corr = fwd if len(fwd) < len(bwd) else {v: k for k, v in bwd.items()}
    return overlap, corr


def _one_direction(H, size, patch, samples, rng):
    ncols = size // patch
    taken, matches = set(), {}
    for row in range(ncols):
        for col in range(ncols):
            votes = Counter()
            for _ in range(samples):
                x = col * patch + int(rng.integers(patch))
                y = row * patch + int(rng.integers(patch))
                pt = cv2.perspectiveTransform(np.array([[[x, y]]], np.float64), H)[0, 0]
                if 0 <= pt[0] < ncols * patch and 0 <= pt[1] < ncols * patch:
                    votes[int(pt[1] // patch) * ncols + int(pt[0] // patch)] += 1
                else:
                    votes[-1] += 1
            target = votes.most_common(1)[0][0]
            if target >= 0 and target not in taken:
                taken.add(target)
                matches[row * ncols + col] = target
    return matches
