"""`mimic-fast eval`: fixed masks per pair (comparable across checkpoints), the loss, the PNG grid."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from run_helpers import holdout_fraction, run_cli, train_args

from mimic_fast.train.evaluate import GRID_HEADER, evaluate, per_pair_losses


@pytest.fixture(scope="module")
def trained(mined_tum, tmp_path_factory):
    run = tmp_path_factory.mktemp("eval") / "run"
    extra = ("--holdout", repr(holdout_fraction(mined_tum, 3)), "--keep-every", "4",
             "--ckpt-every", "4")
    assert run_cli(train_args(mined_tum, run, steps=8, batch=2, extra=extra)) == 0
    return run


def test_eval_is_fixed_per_pair_and_written(trained, tmp_path):
    a = evaluate(trained, batch_size=2, out=tmp_path / "a", num_images=3, num_workers=0)
    b = evaluate(trained, batch_size=5, out=tmp_path / "b", num_images=3, num_workers=0)
    assert a["split"] == "holdout" and a["pairs"] >= 1
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)  # batch size changes nothing
    assert [p["key"] for p in a["per_pair"]] == [p["key"] for p in b["per_pair"]]
    assert json.loads((tmp_path / "a" / "eval-step00000008.json").read_text())["loss"] == a["loss"]
    img = cv2.imread(a["png"])
    rows = min(3, a["pairs"])
    assert img.shape == (GRID_HEADER + rows * (224 + 4), 4 * (224 + 4), 3)


def test_eval_compares_checkpoints_on_the_same_pairs(trained, tmp_path):
    early = evaluate(trained / "checkpoints" / "step-00000004.pt", out=tmp_path, num_workers=0)
    late = evaluate(trained, out=tmp_path, num_workers=0)
    assert (early["step"], late["step"]) == (4, 8)
    assert [p["key"] for p in early["per_pair"]] == [p["key"] for p in late["per_pair"]]
    assert early["loss"] != late["loss"]
    every = evaluate(trained, split="all", out=tmp_path, num_workers=0)
    assert every["pairs"] > late["pairs"]


def test_eval_cli(trained, tmp_path, capsys):
    assert run_cli(["eval", str(trained), "--out", str(tmp_path), "--num-workers", "0"]) == 0
    out = capsys.readouterr().out
    result = json.loads(next(tmp_path.glob("eval-*.json")).read_text())
    assert f"loss {result['loss']:.4f}" in out
    if result["pairs"] > 1:
        assert f"cross-view gain {result['cross_view_gain']:+.4f}" in out
    else:  # one held-out pair has no other pair to lend a reference
        assert result["cross_view_gain"] is None and "no cross-view gain" in out
    assert result["png"] in out and result["json"] in out
    assert run_cli(["eval", str(tmp_path / "nothing")]) == 2


def test_per_pair_loss_matches_the_model_loss():
    from mimic_fast.models import create_model

    torch.manual_seed(0)
    model = create_model("croco_test", img_size=64).eval()
    x, ref = torch.randn(3, 3, 64, 64), torch.randn(3, 3, 64, 64)
    mask = torch.zeros(3, model.num_patches, dtype=torch.bool)
    for row in range(3):
        mask[row, torch.randperm(model.num_patches)[: model.cfg.num_masked]] = True
    with torch.no_grad():
        loss, pred, m = model(x, ref, mask=mask)
        per_pair, pixel, recon = per_pair_losses(model, x, pred, m)
    assert torch.equal(m, mask)
    assert per_pair.mean().item() == pytest.approx(loss.item(), rel=1e-5)
    assert recon.shape == (3, 3, 64, 64) and (pixel >= 0).all()
    # visible patches of the reconstruction are the target's own pixels
    vis = ~mask[0]
    from mimic_fast.data.transforms import denormalize

    truth = model.patchify(denormalize(x))[0, vis]
    assert np.allclose(model.patchify(recon)[0, vis].numpy(), truth.numpy(), atol=1e-5)
