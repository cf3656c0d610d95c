"""MAE model: shapes, cls token handling, masking invariants, learning on CPU."""

from __future__ import annotations

import pytest
import torch

from mimic_fast.models import MAE, create_model, model_config


def _smooth(batch, size, seed):
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    freq = torch.rand(batch, 3, 2, 1, 1, generator=gen) * 12 + 2
    phase = torch.rand(batch, 3, 2, 1, 1, generator=gen) * 6.28
    return torch.sin(freq[:, :, 0] * xx + phase[:, :, 0]) * torch.cos(freq[:, :, 1] * yy + phase[:, :, 1])


def test_base_architecture():
    cfg = model_config("mae_base")
    assert (cfg.arch, cfg.enc_dim, cfg.enc_depth, cfg.enc_heads) == ("mae", 768, 12, 12)
    assert (cfg.dec_dim, cfg.dec_depth, cfg.dec_heads, cfg.mask_ratio) == (512, 8, 16, 0.75)
    assert (cfg.num_masked, cfg.num_visible) == (147, 49)


@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_shapes_and_mask(pos_embed):
    model = create_model("mae_test", pos_embed=pos_embed, attn_impl="torch")
    assert isinstance(model, MAE) and model.encoder.cls_token is not None
    imgs = torch.randn(3, 3, 224, 224)
    loss, pred, mask = model(imgs)
    assert torch.isfinite(loss) and pred.shape == (3, 196, 768)
    assert mask.dtype == torch.bool and mask.sum(dim=1).tolist() == [147] * 3
    latent, _ = model.encoder(imgs, torch.arange(49).expand(3, -1))
    assert latent.shape == (3, 50, 64)  # cls + visible


def test_mae_takes_one_view():
    model = create_model("mae_test", attn_impl="torch")
    imgs = torch.randn(1, 3, 224, 224)
    with pytest.raises(ValueError, match="MAE takes a single view"):
        model(imgs, imgs)


@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_prediction_ignores_masked_pixels(pos_embed):
    model = create_model("mae_test", pos_embed=pos_embed, attn_impl="torch").eval()
    imgs = torch.randn(2, 3, 224, 224)
    _, pred, mask = model(imgs, generator=torch.Generator().manual_seed(1))
    noise = model.unpatchify(torch.randn(2, 196, 768) * mask[..., None])
    _, pred2, _ = model(imgs + noise, mask=mask)
    torch.testing.assert_close(pred2, pred, rtol=1e-5, atol=1e-5)
    _, pred3, _ = model(imgs + model.unpatchify(torch.randn(2, 196, 768) * (~mask)[..., None]), mask=mask)
    assert not torch.allclose(pred3, pred, atol=1e-3)


def test_random_order_of_visible_tokens_does_not_matter():
    """A given bool mask (visible tokens in raster order) and the random path (shuffled order)
    give the same prediction for the same set of visible patches."""
    model = create_model("mae_test", attn_impl="torch").eval()
    imgs = torch.randn(2, 3, 224, 224)
    loss, pred, mask = model(imgs, generator=torch.Generator().manual_seed(2))
    loss2, pred2, _ = model(imgs, mask=mask)
    torch.testing.assert_close(pred2, pred, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss2, loss, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pos_embed", ["cosine", "rope100"])
def test_adamw_steps_lower_the_loss(pos_embed):
    torch.manual_seed(0)
    model = create_model("mae_test", pos_embed=pos_embed, attn_impl="torch", img_size=64)
    imgs = _smooth(4, 64, seed=3)
    mask = model(imgs)[2]
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
    losses = []
    for _ in range(80):
        loss, _, _ = model(imgs, mask=mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.85 and losses[-1] < 0.75 * losses[0], losses[::10]
