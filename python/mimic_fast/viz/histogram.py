"""The stats plot of a mined dataset: the overlap of every candidate that got a homography
against the accepted pairs' with the keep band (low, high) shaded, and beside it what
became of all evaluated candidates (accepted, or each rejection reason)."""

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
    rejected: dict[str, int] | None = None,
    bins: int = 40,
) -> Path:
    """Write the PNG. ``candidates``: overlaps of the candidates with a homography (the only
    ones that have an overlap); ``accepted``: overlaps of the kept pairs; ``rejected``:
    {reason: count} of all evaluated candidates (None: no second panel)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    candidates, accepted = np.asarray(candidates, float), np.asarray(accepted, float)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    panels = 2 if rejected is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.6 * panels + 0.4, 3.6), dpi=100,
                             gridspec_kw={"width_ratios": [3, 2][:panels]}, squeeze=False)
    ax = axes[0, 0]
    edges = np.linspace(0.0, 1.0, bins + 1)
    ax.axvspan(low, high, color="tab:green", alpha=0.12,
               label=f"keep band ({low:g} < overlap < {high:g})")
    ax.hist(candidates, bins=edges, color="0.7",
            label=f"candidates with a homography ({len(candidates)})")
    ax.hist(accepted, bins=edges, color="tab:blue", label=f"accepted pairs ({len(accepted)})")
    ax.set_xlim(0, 1)
    ax.set_xlabel("overlap (fraction of patches with a correspondence)")
    ax.set_ylabel("pairs")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    if rejected is not None:
        _reasons(axes[0, 1], len(accepted), rejected)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _reasons(ax, accepted: int, rejected: dict[str, int]) -> None:
    """Horizontal bars: accepted, then the rejection reasons by count."""
    items = [("accepted", accepted)] + sorted(rejected.items(), key=lambda kv: -kv[1])
    names = [k for k, _ in items][::-1]
    counts = [v for _, v in items][::-1]
    colours = ["tab:red"] * (len(items) - 1) + ["tab:blue"]
    bars = ax.barh(names, counts, color=colours)
    ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_xlim(0, max(counts + [1]) * 1.2)
    ax.set_xlabel("candidates")
    ax.set_title(f"all {sum(counts)} evaluated candidates", fontsize=10)
    ax.tick_params(axis="y", labelsize=8)
