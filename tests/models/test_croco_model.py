"""CroCo model: shapes, masking invariants, loss definition, gradients, learning on CPU."""

from __future__ import annotations

import pytest
import torch

from mimic_fast.models import CroCo, create_model, list_models, model_config


def _views(batch, size=224, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, size, size, generator=gen), torch.randn(batch, 3, size, size, generator=gen)


def test_registry_lists_the_issue_models():
    assert set(list_models()) >= {"croco_base", "croco_large", "croco_test", "mae_base", "mae_test"}
    with pytest.raises(ValueError, match="unknown model 'croco_huge'"):
        create_model("croco_huge")
    with pytest.raises(ValueError, match="pos_embed must be one of"):
        create_model("croco_test", pos_embed="learned")
    with pytest.raises(ValueError, match=r"unknown model option\(s\) \['depth'\]"):
        create_model("croco_test", depth=3)


def smooth_images(batch, size, seed):
    """Smooth random sinusoid images: normalized patches are predictable from their neighbours."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    freq = torch.rand(batch, 3, 2, 1, 1, generator=gen) * 12 + 2
    phase = torch.rand(batch, 3, 2, 1, 1, generator=gen) * 6.28
    return torch.sin(freq[:, :, 0] * xx + phase[:, :, 0]) * torch.cos(freq[:, :, 1] * yy + phase[:, :, 1])


def test_base_architecture_matches_the_paper():
    cfg = model_config("croco_base")
    assert (cfg.enc_dim, cfg.enc_depth, cfg.enc_heads) == (768, 12, 12)
    assert (cfg.dec_dim, cfg.dec_depth, cfg.dec_heads) == (512, 8, 16)
    assert (cfg.mask_ratio, cfg.num_patches, cfg.num_visible) == (0.9, 196, 20)
    large = model_config("croco_large")
    assert (large.enc_dim, large.enc_depth, large.enc_heads, large.dec_dim, large.dec_depth, large.dec_heads) == (
        1024, 24, 16, 768, 12, 12)


@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_shapes_mask_and_attributes(pos_embed):
    model = create_model("croco_test", pos_embed=pos_embed, attn_impl="torch")
    assert isinstance(model, CroCo)
    assert (model.patch_size, model.img_size, model.num_patches, model.mask_ratio) == (16, 224, 196, 0.9)
    target, reference = _views(3)
    loss, pred, mask = model(target, reference)
    assert loss.shape == () and torch.isfinite(loss)
    assert pred.shape == (3, 196, 16 * 16 * 3)
    assert mask.dtype == torch.bool and mask.shape == (3, 196)
    assert mask.sum(dim=1).tolist() == [176, 176, 176]
    assert not torch.equal(mask[0], mask[1])  # drawn independently per sample


def test_loss_is_normalized_mse_over_masked_patches():
    model = create_model("croco_test", attn_impl="torch")
    target, reference = _views(2, seed=1)
    loss, pred, mask = model(target, reference)
    patches = model.patchify(target)
    norm = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = ((pred - norm) ** 2).mean(-1)
    torch.testing.assert_close(loss, per_patch[mask].mean())


def test_patchify_roundtrip_and_layout():
    model = create_model("croco_test", attn_impl="torch")
    imgs = torch.randn(2, 3, 224, 224)
    patches = model.patchify(imgs)
    assert patches.shape == (2, 196, 768)
    # patch 15 = row 1, col 1; its first entry is pixel (16, 16) channel 0, then channel 1
    assert patches[0, 15, 0] == imgs[0, 0, 16, 16] and patches[0, 15, 1] == imgs[0, 1, 16, 16]
    torch.testing.assert_close(model.unpatchify(patches), imgs, rtol=0, atol=0)


@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_prediction_ignores_masked_pixels_of_the_target(pos_embed):
    """The decoder must see only visible target patches: changing masked ones cannot change pred."""
    model = create_model("croco_test", pos_embed=pos_embed, attn_impl="torch").eval()
    target, reference = _views(2, seed=2)
    gen = torch.Generator().manual_seed(5)
    _, pred, mask = model(target, reference, generator=gen)
    noise = model.unpatchify(torch.randn(2, 196, 768) * mask[..., None])  # only masked patches
    _, pred_masked_changed, mask2 = model(target + noise, reference, mask=mask)
    assert torch.equal(mask, mask2)
    torch.testing.assert_close(pred_masked_changed, pred, rtol=1e-5, atol=1e-5)
    visible_noise = model.unpatchify(torch.randn(2, 196, 768) * (~mask)[..., None])
    _, pred_visible_changed, _ = model(target + visible_noise, reference, mask=mask)
    assert not torch.allclose(pred_visible_changed, pred, atol=1e-3)
    _, pred_reference_changed, _ = model(target, reference + 1.0, mask=mask)
    assert not torch.allclose(pred_reference_changed, pred, atol=1e-3)


def test_fixed_mask_and_generator_are_reproducible():
    model = create_model("croco_test", attn_impl="torch").eval()
    target, reference = _views(2, seed=3)
    out1 = model(target, reference, generator=torch.Generator().manual_seed(0))
    out2 = model(target, reference, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out1[2], out2[2]) and torch.equal(out1[1], out2[1])
    out3 = model(target, reference, mask=out1[2])
    torch.testing.assert_close(out3[0], out1[0])


def test_bad_inputs_raise():
    model = create_model("croco_test", attn_impl="torch")
    target, reference = _views(2)
    with pytest.raises(ValueError, match="CroCo needs reference_view"):
        model(target)
    with pytest.raises(ValueError, match=r"mask must be a bool tensor \[B, 196\]"):
        model(target, reference, mask=torch.zeros(2, 100, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"images must have shape \[B, 3, 224, 224\], got \[2, 3, 64, 64\]"):
        model(target[..., :64, :64], reference[..., :64, :64])
    with pytest.raises(RuntimeError, match="exactly 176 True"):
        model(target, reference, mask=torch.zeros(2, 196, dtype=torch.bool))


def test_every_parameter_gets_a_gradient():
    model = create_model("croco_test", pos_embed="rope100", attn_impl="torch")
    loss, _, _ = model(*_views(2, seed=4))
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert missing == []


@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_adamw_steps_learn_to_complete_from_the_reference(pos_embed):
    """Identical views: the masked patches are in the reference view. Predicting zeros (the
    mean of normalized targets) scores ~1.0; the model must get well below that."""
    torch.manual_seed(0)
    model = create_model("croco_test", pos_embed=pos_embed, attn_impl="torch", img_size=64)
    target = smooth_images(4, 64, seed=6)
    mask = model(target, target)[2]  # fixed mask: the loss of the same batch must fall
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    losses = []
    for _ in range(80):
        loss, _, _ = model(target, target.clone(), mask=mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 and losses[-1] < 0.75 * losses[0], losses[::10]
