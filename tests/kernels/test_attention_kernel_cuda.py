"""Compiled Triton attention on a GPU at CroCo's real shapes (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

from mimic_fast.kernels import attention, attention_reference
from mimic_fast.kernels.fused_attention import interpreted

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(interpreted(), reason="kernels imported under TRITON_INTERPRET=1 (compiled path needed)"),
]


def _case(b, h, n_q, n_k, d, dtype, seed):
    gen = torch.Generator(device="cuda").manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", generator=gen).to(dtype).requires_grad_()
               for n in (n_q, n_k, n_k))
    q_pos = torch.randint(0, 14, (b, n_q, 2), device="cuda", generator=gen)
    k_pos = torch.randint(0, 14, (b, n_k, 2), device="cuda", generator=gen)
    return q, k, v, q_pos, k_pos


def _run(fn, q, k, v, q_pos, k_pos, grad_out, **kw):
    out = fn(q, k, v, q_pos, k_pos, **kw)
    return (out, *torch.autograd.grad(out, (q, k, v), grad_out))


def _err(a, b):
    return (a.double() - b.double()).abs().max().item()


@pytest.mark.parametrize("rope", [True, False])
@pytest.mark.parametrize("h, n_q, n_k, d", [(12, 196, 196, 64), (12, 20, 20, 64), (16, 196, 196, 32),
                                            (16, 37, 196, 32), (4, 300, 77, 128)])
def test_bf16_croco_shapes_within_budget(rope, h, n_q, n_k, d):
    q, k, v, q_pos, k_pos = _case(8, h, n_q, n_k, d, torch.bfloat16, seed=n_q + d)
    if not rope:
        q_pos = k_pos = None
    grad_out = torch.randn_like(q)
    got = _run(attention, q, k, v, q_pos, k_pos, grad_out)
    ref = _run(attention_reference, q, k, v, q_pos, k_pos, grad_out)
    naive = _run(attention_reference, q, k, v, q_pos, k_pos, grad_out, upcast=False)
    for name, g, r, p in zip(("out", "dq", "dk", "dv"), got, ref, naive):
        assert torch.isfinite(g).all(), name
        assert _err(g, r) <= 2 * _err(p, r) + 1e-3, (name, _err(g, r), _err(p, r))


def test_fp32_compiled_matches_reference():
    q, k, v, q_pos, k_pos = _case(2, 4, 45, 61, 64, torch.float32, seed=1)
    grad_out = torch.randn_like(q)
    for g, r in zip(_run(attention, q, k, v, q_pos, k_pos, grad_out),
                    _run(attention_reference, q, k, v, q_pos, k_pos, grad_out)):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-4)


def test_torch_compile_fullgraph():
    q, k, v, q_pos, k_pos = _case(2, 4, 20, 196, 32, torch.bfloat16, seed=2)

    @torch.compile(fullgraph=True)
    def f(q, k, v, q_pos, k_pos):
        return attention(q, k, v, q_pos, k_pos).float().square().sum()

    loss = f(q, k, v, q_pos, k_pos)
    loss.backward()
    expected = attention(q.detach(), k.detach(), v.detach(), q_pos, k_pos).float().square().sum()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-3, atol=1e-3)
    assert q.grad is not None and torch.isfinite(q.grad).all()


def test_cuda_graph_capture():
    """Forward and backward are capturable (no host syncs, static shapes)."""
    q, k, v, q_pos, k_pos = _case(4, 12, 20, 20, 64, torch.bfloat16, seed=3)
    grad_out = torch.randn_like(q)
    _run(attention, q, k, v, q_pos, k_pos, grad_out)  # compile the kernels outside the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = _run(attention, q, k, v, q_pos, k_pos, grad_out)
    graph.replay()
    torch.cuda.synchronize()
    for c, e in zip(captured, _run(attention, q, k, v, q_pos, k_pos, grad_out)):
        torch.testing.assert_close(c, e)
