"""The Triton RoPE-2D attention against its torch reference, forward and backward.

Runs the kernels under TRITON_INTERPRET=1 on CPU (tests/conftest.py sets it when there is no
GPU) at small shapes, or compiled on a CUDA machine. Low-precision results use
flash-attention's budget: error vs the fp32 reference <= 2x the error of the same
computation done naively in the low precision (+ a small floor).
"""

from __future__ import annotations

import pytest
import torch

from mimic_fast.kernels import attention, attention_reference
from mimic_fast.kernels._config import BlockConfig
from mimic_fast.kernels.fused_attention import _fwd_op, interpreted


def _device() -> str:
    if interpreted():
        return "cpu"
    if torch.cuda.is_available():
        return "cuda"
    pytest.skip("no CUDA device and the kernels were not imported under TRITON_INTERPRET=1")


def _inputs(b, h, n_q, n_k, d, dtype, rope, seed, device):
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, n, d, generator=gen).to(device=device, dtype=dtype).requires_grad_()
               for n in (n_q, n_k, n_k))
    q_pos = torch.randint(0, 14, (b, n_q, 2), generator=gen).to(device) if rope else None
    k_pos = torch.randint(0, 14, (b, n_k, 2), generator=gen).to(device) if rope else None
    return q, k, v, q_pos, k_pos


def _forward_backward(fn, q, k, v, q_pos, k_pos, grad_out, **kwargs):
    out = fn(q, k, v, q_pos, k_pos, **kwargs)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    return (out, *grads)


def _max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


SMALL_BLOCKS = BlockConfig(16, 16)  # many tiles and ragged edges even at short lengths


@pytest.mark.parametrize("rope", [True, False])
@pytest.mark.parametrize("n_q, n_k, d", [(20, 20, 32), (37, 37, 64), (20, 37, 32), (1, 5, 64)])
def test_fp32_matches_reference(rope, n_q, n_k, d):
    device = _device()
    q, k, v, q_pos, k_pos = _inputs(2, 2, n_q, n_k, d, torch.float32, rope, seed=n_q * 100 + n_k, device=device)
    grad_out = torch.randn(2, 2, n_q, d, device=device)
    got = _forward_backward(attention, q, k, v, q_pos, k_pos, grad_out, config=SMALL_BLOCKS)
    want = _forward_backward(attention_reference, q, k, v, q_pos, k_pos, grad_out)
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
        assert torch.isfinite(g).all(), name
        torch.testing.assert_close(g, w, rtol=2e-4, atol=2e-5, msg=lambda m, name=name: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rope", [True, False])
@pytest.mark.parametrize("n, d", [(20, 32), (37, 64)])
def test_low_precision_within_flash_attention_budget(dtype, rope, n, d):
    device = _device()
    q, k, v, q_pos, k_pos = _inputs(2, 3, n, n, d, dtype, rope, seed=7 * n + d, device=device)
    grad_out = torch.randn(2, 3, n, d, device=device).to(dtype)
    got = _forward_backward(attention, q, k, v, q_pos, k_pos, grad_out, config=SMALL_BLOCKS)
    ref = _forward_backward(attention_reference, q, k, v, q_pos, k_pos, grad_out)  # fp32 math
    naive = _forward_backward(attention_reference, q, k, v, q_pos, k_pos, grad_out, upcast=False)
    for name, g, r, p in zip(("out", "dq", "dk", "dv"), got, ref, naive):
        assert g.dtype == dtype and torch.isfinite(g).all(), name
        assert _max_err(g, r) <= 2 * _max_err(p, r) + 1e-3, (name, _max_err(g, r), _max_err(p, r))


def test_croco_lengths_and_default_config():
    """196 keys (the reference view) with 20 and 196 queries, default block sizes."""
    device = _device()
    for n_q in (20, 196):
        q, k, v, q_pos, k_pos = _inputs(1, 2, n_q, 196, 32, torch.float32, True, seed=n_q, device=device)
        torch.testing.assert_close(attention(q, k, v, q_pos, k_pos), attention_reference(q, k, v, q_pos, k_pos),
                                   rtol=2e-4, atol=2e-5)


def test_strided_inputs_and_broadcast_positions():
    """q, k, v as views of a fused qkv projection; positions expanded over the batch (stride 0)."""
    device = _device()
    b, n, h, d = 3, 21, 2, 32
    qkv = torch.randn(b, n, 3, h, d, device=device, requires_grad=True)
    q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
    grid = torch.stack(torch.meshgrid(torch.arange(3), torch.arange(7), indexing="ij"), -1).reshape(1, n, 2)
    pos = grid.to(device).expand(b, -1, -1)
    assert pos.stride(0) == 0 and not q.is_contiguous()
    out = attention(q, k, v, pos, pos, config=SMALL_BLOCKS)
    assert out.transpose(1, 2).is_contiguous()  # output memory is [B, N, H, D]
    (grad_kernel,) = torch.autograd.grad(out.square().sum(), qkv)
    ref = attention_reference(q, k, v, pos.contiguous(), pos.contiguous())
    (grad_ref,) = torch.autograd.grad(ref.square().sum(), qkv)
    torch.testing.assert_close(out, ref, rtol=2e-4, atol=2e-5)
    torch.testing.assert_close(grad_kernel, grad_ref, rtol=2e-4, atol=5e-5)


def test_rope_base_and_scale_are_used():
    device = _device()
    q, k, v, q_pos, k_pos = _inputs(1, 2, 9, 12, 32, torch.float32, True, seed=3, device=device)
    for base, scale in ((10000.0, None), (100.0, 0.05)):
        got = attention(q, k, v, q_pos, k_pos, rope_base=base, scale=scale)
        want = attention_reference(q, k, v, q_pos, k_pos, rope_base=base, scale=scale)
        torch.testing.assert_close(got, want, rtol=2e-4, atol=2e-5)
    assert not torch.allclose(attention(q, k, v, q_pos, k_pos, rope_base=10000.0), attention(q, k, v, q_pos, k_pos))


def test_empty_batch_and_queries():
    device = _device()
    for b, n_q in ((0, 5), (2, 0)):
        q = torch.randn(b, 2, n_q, 32, device=device, requires_grad=True)
        k = torch.randn(b, 2, 6, 32, device=device, requires_grad=True)
        out = attention(q, k, k)
        assert out.shape == (b, 2, n_q, 32)
        out.sum().backward()
        assert k.grad.shape == k.shape and not k.grad.any()


def test_custom_op_registration():
    """Schema, fake (meta) implementation and autograd registration of the forward op."""
    device = _device()
    q, k, v, q_pos, k_pos = _inputs(1, 2, 5, 7, 32, torch.float32, True, seed=11, device=device)
    torch.library.opcheck(_fwd_op, (q, k, v, q_pos, k_pos, 100.0, 32 ** -0.5, 16, 16, 4, 2),
                          test_utils=("test_schema", "test_faketensor", "test_autograd_registration"))


@pytest.mark.parametrize("bad, message", [
    (dict(q=torch.randn(1, 2, 5, 32, dtype=torch.float64)), "q must have dtype in"),
    (dict(q=torch.randn(1, 2, 5, 48), k=torch.randn(1, 2, 6, 48), v=torch.randn(1, 2, 6, 48)),
     r"head dim D in \[32, 64, 128\], got D=48"),
    (dict(k=torch.randn(1, 2, 0, 32), v=torch.randn(1, 2, 0, 32)), "at least one token"),
    (dict(k_pos=torch.zeros(1, 6, 2, dtype=torch.int32)), "q_pos and k_pos must be given together"),
    (dict(rope_base=-1.0), "rope_base must be a positive finite number"),
])
def test_kernel_rejects_bad_arguments(bad, message):
    args = dict(q=torch.randn(1, 2, 5, 32), k=torch.randn(1, 2, 6, 32), v=torch.randn(1, 2, 6, 32))
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        attention(**args)


def test_cpu_tensors_without_interpreter_raise(monkeypatch):
    import mimic_fast.kernels.fused_attention as attention_module

    monkeypatch.setattr(attention_module, "interpreted", lambda: False)
    x = torch.randn(1, 2, 5, 32)
    with pytest.raises(ValueError, match="q must be a CUDA tensor for the Triton attention kernel, got device cpu"):
        attention(x, x, x)


def test_block_config_validation():
    with pytest.raises(ValueError, match="block_m must be a power of two >= 16, got 24"):
        BlockConfig(24, 16)
