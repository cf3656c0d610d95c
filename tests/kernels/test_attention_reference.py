"""The torch reference of RoPE-2D attention against hand-computed cases and invariants."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mimic_fast.kernels import attention_reference, rope2d_reference
from mimic_fast.models.pos_embed import apply_rope2d, rope2d_cos_sin


def _rope_by_hand(x: torch.Tensor, pos: torch.Tensor, base: float) -> torch.Tensor:
    """Loop-level RoPE-2D straight from the issue's wording, fp64, x [N, D], pos [N, 2]."""
    n, d = x.shape
    half, quarter = d // 2, d // 4
    out = torch.empty_like(x, dtype=torch.float64)
    for i in range(n):
        for h, coord in ((0, pos[i, 0]), (1, pos[i, 1])):  # y half, then x half
            for j in range(quarter):
                theta = float(coord) * base ** (-2 * j / half)
                c1, c2 = h * half + j, h * half + j + quarter
                a, b = float(x[i, c1]), float(x[i, c2])
                out[i, c1] = a * math.cos(theta) - b * math.sin(theta)
                out[i, c2] = b * math.cos(theta) + a * math.sin(theta)
    return out


def test_rope_matches_hand_computation():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 7, 16, generator=gen, dtype=torch.float64)
    pos = torch.randint(0, 14, (1, 7, 2), generator=gen)
    expected = _rope_by_hand(x[0, 0], pos[0], 100.0)
    torch.testing.assert_close(rope2d_reference(x, pos, 100.0)[0, 0], expected, rtol=1e-12, atol=1e-12)


def test_rope_smallest_case_by_hand():
    # D = 4: one frequency (base ** 0 = 1) per half. y = 1 rotates channels (0, 1) by 1 rad.
    x = torch.tensor([[[[1.0, 0.0, 2.0, 0.0]]]], dtype=torch.float64)
    pos = torch.tensor([[[1, 0]]])
    expected = torch.tensor([math.cos(1.0), math.sin(1.0), 2.0, 0.0], dtype=torch.float64)
    torch.testing.assert_close(rope2d_reference(x, pos)[0, 0, 0], expected)


def test_rope_is_identity_at_origin_and_preserves_norms():
    x = torch.randn(2, 3, 5, 32, dtype=torch.float64)
    zeros = torch.zeros(2, 5, 2, dtype=torch.long)
    torch.testing.assert_close(rope2d_reference(x, zeros), x)
    pos = torch.randint(-3, 20, (2, 5, 2))
    torch.testing.assert_close(rope2d_reference(x, pos).norm(dim=-1), x.norm(dim=-1))


def test_rope_scores_depend_only_on_relative_positions():
    q = torch.randn(1, 2, 6, 32, dtype=torch.float64)
    k = torch.randn(1, 2, 9, 32, dtype=torch.float64)
    q_pos, k_pos = torch.randint(0, 14, (1, 6, 2)), torch.randint(0, 14, (1, 9, 2))
    shift = torch.tensor([5, -3])
    out = attention_reference(q, k, k, q_pos, k_pos)
    shifted = attention_reference(q, k, k, q_pos + shift, k_pos + shift)
    torch.testing.assert_close(out, shifted, rtol=1e-10, atol=1e-10)
    # and a shift of only one side does change the result
    assert not torch.allclose(out, attention_reference(q, k, k, q_pos + shift, k_pos))


def test_reference_without_rope_is_sdpa():
    q, k, v = (torch.randn(2, 3, n, 32, dtype=torch.float64) for n in (7, 11, 11))
    torch.testing.assert_close(attention_reference(q, k, v), F.scaled_dot_product_attention(q, k, v))
    torch.testing.assert_close(attention_reference(q, k, v, scale=0.3),
                               F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_model_rope_tables_match_reference():
    x = torch.randn(2, 4, 13, 64)
    pos = torch.randint(0, 14, (2, 13, 2))
    torch.testing.assert_close(apply_rope2d(x, *rope2d_cos_sin(pos, 64, 100.0)), rope2d_reference(x, pos, 100.0),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad, message", [
    (dict(q=torch.randn(2, 3, 4)), "q must have shape"),
    (dict(k=torch.randn(2, 3, 5, 16)), "k must have shape"),
    (dict(v=torch.randn(2, 3, 5, 32).double()), "v must have the dtype of q"),
    (dict(q_pos=torch.zeros(2, 4, 2, dtype=torch.long)), "q_pos and k_pos must be given together"),
    (dict(q_pos=torch.zeros(2, 4, 2), k_pos=torch.zeros(2, 5, 2)), "q_pos must be an integer tensor"),
    (dict(q_pos=torch.zeros(2, 4, 3, dtype=torch.long), k_pos=torch.zeros(2, 5, 2, dtype=torch.long)),
     r"q_pos must have shape \[B, N, 2\] = \[2, 4, 2\]"),
])
def test_reference_rejects_bad_arguments(bad, message):
    args = dict(q=torch.randn(2, 3, 4, 32), k=torch.randn(2, 3, 5, 32), v=torch.randn(2, 3, 5, 32))
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        attention_reference(**args)
