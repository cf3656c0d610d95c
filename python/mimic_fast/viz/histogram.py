"""The overlap histogram of a mined dataset: every evaluated candidate and the kept ones,
with the keep band (low, high) marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def overlap_histogram(
    candidates: np.ndarray,
    accepted: np.ndarray,
    path: str | Path,
    low: float = 0.5,
    high: float = 0.75,
    title: str = "patch overlap",
    bins: int = 40,
) -> Path:
    """Write a PNG histogram of candidate overlaps (grey) and accepted ones (colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=120)
    ax.hist(np.asarray(candidates, float), bins=edges, color="0.75",
            label=f"candidates with a homography ({len(candidates)})")
    ax.hist(np.asarray(accepted, float), bins=edges, color="tab:blue",
            label=f"accepted pairs ({len(accepted)})")
    for x in (low, high):
        ax.axvline(x, color="tab:red", lw=1, ls="--")
    ax.set_xlabel("overlap (fraction of patches with a correspondence)")
    ax.set_ylabel("pairs")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
