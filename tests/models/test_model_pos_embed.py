"""Patch coordinates and the fixed 2D sin-cos embedding (MAE / CroCo v1 convention)."""

from __future__ import annotations

import math

import pytest
import torch

from mimic_fast.models.pos_embed import patch_positions, sincos_2d_pos_embed


def test_patch_positions_raster_order():
    pos = patch_positions(3)
    assert pos.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [2, 2]]


def test_sincos_values_by_hand():
    dim, grid = 8, 4
    emb = sincos_2d_pos_embed(dim, grid)
    assert emb.shape == (16, 8)
    # patch 6 = row 1, col 2. First half encodes the column, second the row;
    # each half is [sin(p w0), sin(p w1), cos(p w0), cos(p w1)] with w = [1, 10000 ** -0.5].
    w = [1.0, 10000 ** -0.5]
    expected = [math.sin(2 * w[0]), math.sin(2 * w[1]), math.cos(2 * w[0]), math.cos(2 * w[1]),
                math.sin(1 * w[0]), math.sin(1 * w[1]), math.cos(1 * w[0]), math.cos(1 * w[1])]
    torch.testing.assert_close(emb[6], torch.tensor(expected))


def test_sincos_cls_row_is_zero_and_rows_are_distinct():
    emb = sincos_2d_pos_embed(64, 14, cls_token=True)
    assert emb.shape == (197, 64) and not emb[0].any()
    assert torch.cdist(emb[1:], emb[1:]).add(torch.eye(196)).min() > 0.1


def test_sincos_rejects_bad_dim():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d_pos_embed(30, 4)
