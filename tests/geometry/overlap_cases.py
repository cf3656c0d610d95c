"""Homographies used by the patch-overlap tests."""

from __future__ import annotations

import numpy as np


def shift(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0, tx], [0, 1, ty], [0, 0, 1]])


def zoom_about(scale: float, cx: float = 112.0, cy: float = 112.0) -> np.ndarray:
    return np.array([[scale, 0, cx - scale * cx], [0, scale, cy - scale * cy], [0, 0, 1.0]])


def random_homographies(rng: np.random.Generator, n: int, size: float = 224.0) -> np.ndarray:
    """Camera-motion-like homographies: similarity about the centre plus perspective."""
    c = size / 2
    t = rng.uniform(-0.4, 0.4, n)
    s = np.exp(rng.uniform(-0.5, 0.5, n))
    H = np.zeros((n, 3, 3))
    H[:, 0, 0], H[:, 0, 1] = s * np.cos(t), -s * np.sin(t)
    H[:, 1, 0], H[:, 1, 1] = s * np.sin(t), s * np.cos(t)
    H[:, :2, :2] += rng.normal(0, 0.05, (n, 2, 2))
    H[:, 2, :2] = rng.uniform(-1.5e-3, 1.5e-3, (n, 2))
    H[:, 2, 2] = 1
    T = np.tile(np.eye(3), (n, 1, 1))
    T[:, :2, 2] = c + rng.uniform(-0.4, 0.4, (n, 2)) * size
    Ti = np.eye(3)
    Ti[:2, 2] = -c
    return T @ H @ Ti
