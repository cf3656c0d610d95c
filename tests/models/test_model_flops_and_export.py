"""FLOP accounting against torch's counter, and the timm state-dict export."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mimic_fast.models import create_model


@pytest.mark.parametrize("arch, kw", [
    ("croco_test", {}),
    ("mae_test", {}),
    ("croco_test", dict(enc_dim=96, enc_heads=3, dec_dim=128, dec_heads=4, mlp_ratio=2.0, img_size=64)),
])
def test_flops_per_sample_matches_torch_flop_counter(arch, kw, monkeypatch):
    # torch's counter does not count CPU SDPA: route attention through plain matmuls it counts.
    def math_sdpa(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5, dim=-1) @ v

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", math_sdpa)
    model = create_model(arch, attn_impl="torch", **kw)
    size = model.img_size
    views = (torch.randn(2, 3, size, size),) * (2 if arch.startswith("croco") else 1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*views)
    counted = counter.get_total_flops() / 2
    assert abs(model.flops_per_sample() - counted) <= 0.01 * counted, (model.flops_per_sample(), counted)


def _expected_timm_keys(depth, cls_token):
    keys = {"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed", "norm.weight", "norm.bias"}
    if cls_token:
        keys.add("cls_token")
    for i in range(depth):
        for part in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2"):
            keys |= {f"blocks.{i}.{part}.weight", f"blocks.{i}.{part}.bias"}
    return keys


@pytest.mark.parametrize("arch, cls_token", [("croco_base", False), ("mae_base", True)])
def test_export_has_timm_vit_base_layout(arch, cls_token):
    model = create_model(arch, attn_impl="torch", enc_depth=2)  # depth 2: same layout, cheaper
    sd = model.encoder_state_dict_timm()
    assert set(sd) == _expected_timm_keys(2, cls_token)
    assert sd["pos_embed"].shape == (1, 196 + int(cls_token), 768)
    assert sd["blocks.1.attn.qkv.weight"].shape == (2304, 768)
    assert sd["blocks.0.mlp.fc1.weight"].shape == (3072, 768)
    assert sd["patch_embed.proj.weight"].shape == (768, 3, 16, 16)
    # copies, not views of the live parameters
    sd["norm.weight"].add_(1.0)
    assert not torch.equal(sd["norm.weight"], model.encoder.norm.weight)


def test_export_kwargs_and_refusals():
    assert create_model("croco_base", attn_impl="torch", enc_depth=12).timm_kwargs() == dict(
        model_name="vit_base_patch16_224", pretrained=False, num_classes=0, img_size=224,
        class_token=False, global_pool="avg", fc_norm=False)
    with pytest.raises(ValueError, match="only encoders with pos_embed='cosine'"):
        create_model("croco_test", pos_embed="rope100", attn_impl="torch").encoder_state_dict_timm()
    with pytest.raises(ValueError, match=r"no timm ViT preset for \(dim, heads, patch\) = \(64, 2, 16\)"):
        create_model("croco_test", attn_impl="torch").encoder_state_dict_timm()


@pytest.mark.parametrize("arch", ["croco_base", "mae_base"])
def test_timm_loads_export_and_gives_same_features(arch):
    timm = pytest.importorskip("timm", reason="timm is not installed here (it needs torchvision)")
    torch.manual_seed(0)
    model = create_model(arch, attn_impl="torch").eval()
    vit = timm.create_model(**model.timm_kwargs()).eval()
    vit.load_state_dict(model.encoder_state_dict_timm(), strict=True)
    imgs = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        ours, _ = model.encoder(imgs)
        theirs = vit.forward_features(imgs)
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-4)
