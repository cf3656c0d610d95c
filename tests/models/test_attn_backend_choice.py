"""attn_impl resolution: auto/torch/triton, no silent downgrade, Triton path == torch path."""

from __future__ import annotations

import logging

import pytest
import torch

import mimic_fast.models.attn_backend as attn_backend
from mimic_fast.models import create_model
from mimic_fast.models.attn_backend import AttentionBackend


def test_auto_uses_torch_on_cpu_and_logs(caplog):
    attn_backend._logged.clear()
    with caplog.at_level(logging.INFO, logger="mimic_fast.models.attn_backend"):
        assert AttentionBackend("auto", None).resolve(torch.device("cpu")) == "torch"
    assert "attn_impl=auto -> torch on cpu" in caplog.text


def test_triton_without_gpu_or_interpreter_raises(monkeypatch):
    monkeypatch.setattr(attn_backend, "triton_status", lambda: (True, False, ""))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="attn_impl='triton' requested but no CUDA device"):
        create_model("croco_test", attn_impl="triton")
    with pytest.raises(RuntimeError, match="attn_impl='triton' requested for tensors on cpu"):
        AttentionBackend("triton", None).resolve(torch.device("cpu"))


def test_triton_without_triton_raises(monkeypatch):
    monkeypatch.setattr(attn_backend, "triton_status", lambda: (False, False, "triton is not importable (x)"))
    with pytest.raises(RuntimeError, match="triton is not importable"):
        AttentionBackend("triton", None).resolve(torch.device("cuda"))
    assert AttentionBackend("auto", None).resolve(torch.device("cuda")) == "torch"


@pytest.mark.parametrize("arch", ["croco_test", "mae_test"])
@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_triton_model_matches_torch_model(arch, pos_embed):
    """Same weights and mask: the kernel path (interpreter on CPU) gives the torch path's
    loss and gradients."""
    _, interpreted, _ = attn_backend.triton_status()
    device = "cpu" if interpreted else "cuda"
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs CUDA or TRITON_INTERPRET=1")
    torch.manual_seed(0)
    kw = dict(pos_embed=pos_embed, img_size=32, patch_size=8)
    ref = create_model(arch, attn_impl="torch", **kw).to(device)
    fused = create_model(arch, attn_impl="triton", **kw).to(device)
    fused.load_state_dict(ref.state_dict())
    imgs = torch.randn(2, 3, 32, 32, device=device)
    views = (imgs, imgs.flip(-1)) if arch.startswith("croco") else (imgs,)
    mask = ref(*views)[2]
    results = []
    for model in (ref, fused):
        loss, pred, _ = model(*views, mask=mask)
        loss.backward()
        results.append((loss, pred, model.encoder.blocks[0].attn.qkv.weight.grad))
    for got, want in zip(results[1], results[0]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
