"""``mimic-fast eval``: reconstruction loss on held-out pairs with one fixed mask per pair
(comparable across checkpoints: MIMIC Table 3 protocol) and a PNG grid (MIMIC Figure 13).

Each pair's masked view and patch mask come from a generator keyed by (seed, crc32(key)), so
the same pair is masked the same way for every checkpoint, batch size and dataset around it.
No augmentation. Reported, averaged over pairs:

* ``loss``: the training objective, MSE over the masked patches against per-patch
  normalised targets (when the model uses norm_pix_loss, as CroCo/MAE do);
* ``pixel_mse``: MSE over the masked pixels of the reconstruction in RGB [0, 1] units (the
  prediction de-normalised with the target patch's own mean and std).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from mimic_fast.data.index import open_index, split as split_index
from mimic_fast.data.loader import PairDataset, make_loader
from mimic_fast.data.transforms import PairTransform, denormalize, normalize
from mimic_fast.train import checkpoint as ckpt_io
from mimic_fast.train.config import TrainConfig
from mimic_fast.train.distributed import resolve_device
from mimic_fast.train.trainer import build_model

log = logging.getLogger(__name__)


def per_pair_losses(model, target: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor):
    """(loss [B], pixel_mse [B], reconstruction [B, 3, H, W] in [0, 1]) for normalised
    target images [B, 3, H, W], predictions [B, N, p*p*3] and masks [B, N] (True = masked)."""
    patches = model.patchify(target.float())
    pred = pred.float()
    mean = patches.mean(dim=-1, keepdim=True)
    std = (patches.var(dim=-1, keepdim=True) + 1.0e-6).sqrt()
    norm_pix = getattr(model.cfg, "norm_pix_loss", True)
    goal = (patches - mean) / std if norm_pix else patches
    m = mask.float()
    loss = ((pred - goal).pow(2).mean(-1) * m).sum(1) / m.sum(1)
    pred_img = pred * std + mean if norm_pix else pred
    mixed = torch.where(mask[..., None], pred_img, patches)  # visible patches from the target
    recon = denormalize(model.unpatchify(mixed))
    truth = denormalize(target)
    pix_mask = model.unpatchify(m[..., None].expand_as(patches)) > 0.5
    err = (recon - truth).pow(2)
    pixel_mse = (err * pix_mask).flatten(1).sum(1) / pix_mask.flatten(1).sum(1)
    return loss, pixel_mse, recon


@torch.no_grad()
def evaluate(checkpoint: str | Path, data: str | None = None, split: str = "auto",
             batch_size: int = 16, max_pairs: int | None = None, device: str = "auto",
             out: str | Path | None = None, num_images: int = 8, seed: int = 0,
             num_workers: int = 2) -> dict:
    """Evaluate a run folder or checkpoint file; writes eval-STEP.json and eval-STEP.png."""
    checkpoint = Path(checkpoint)
    state = ckpt_io.load(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    dev = torch.device(resolve_device(device))
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    two_views = model.cfg.arch == "croco"

    if split == "auto":
        split = "holdout" if data is None and cfg.data.holdout > 0 else "all"
    data_path = data or cfg.data.path
    index = split_index(open_index(data_path), cfg.data.holdout, split)
    if max_pairs is not None:
        index = index.subset(np.arange(min(max_pairs, len(index))))
    mc = model.cfg
    transform = PairTransform(mc.img_size, mc.num_patches, mc.num_masked, two_views)
    dataset = PairDataset(index, transform, seed, key_by="key")
    # make_loader: forkserver workers (the model, maybe on CUDA, is set up by now); in order.
    loader = make_loader(dataset, dataclasses.replace(cfg.data, num_workers=num_workers),
                         batch_size, drop_last=False)
    bf16 = dev.type == "cuda"
    losses, pixel, keys, grid_rows = [], [], [], []
    for batch in loader:
        target = normalize(batch["target"].to(dev))
        args = (target, normalize(batch["reference"].to(dev))) if two_views else (target,)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            _, pred, mask = model(*args, mask=batch["mask"].to(dev))
        loss, pix, recon = per_pair_losses(model, target, pred, mask)
        losses += loss.tolist()
        pixel += pix.tolist()
        keys += [index.keys[i] for i in batch["index"].tolist()]
        if sum(len(r[0]) for r in grid_rows) < num_images:
            grid_rows.append(_grid_tiles(model, batch, recon, mask, two_views))
    if not losses:
        raise ValueError(f"no pairs to evaluate in {data_path} ({split})")

    out = Path(out) if out else (checkpoint if checkpoint.is_dir() else checkpoint.parent) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"eval-step{state['step']:08d}"
    result = {"step": state["step"], "checkpoint": str(checkpoint), "model": cfg.model,
              "data": str(data_path), "split": split, "seed": seed, "pairs": len(losses),
              "loss": float(np.mean(losses)), "pixel_mse": float(np.mean(pixel)),
              "per_pair": [{"key": k, "loss": a, "pixel_mse": b} for k, a, b in zip(keys, losses, pixel)],
              "json": str(stem.with_suffix(".json")), "png": str(stem.with_suffix(".png"))}
    _write_grid(stem.with_suffix(".png"), grid_rows, num_images, two_views)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    log.info("eval step %d: loss %.4f, pixel MSE %.5f over %d pairs -> %s", result["step"],
             result["loss"], result["pixel_mse"], result["pairs"], result["json"])
    return result


def _grid_tiles(model, batch, recon, mask, two_views):
    """Columns of uint8 [B, H, W, 3]: (reference,) masked target, reconstruction, target."""
    target = batch["target"].permute(0, 2, 3, 1).numpy()
    p = model.patch_size
    g = model.cfg.grid_size
    pix_mask = mask.view(-1, g, g).repeat_interleave(p, 1).repeat_interleave(p, 2).cpu().numpy()
    masked = np.where(pix_mask[..., None], np.uint8(96), target)
    cols = [masked, (recon.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8), target]
    if two_views:
        cols.insert(0, batch["reference"].permute(0, 2, 3, 1).numpy())
    return cols


def _write_grid(path: Path, rows, num_images: int, two_views: bool) -> None:
    import cv2

    cols = [np.concatenate([r[c] for r in rows])[:num_images] for c in range(len(rows[0]))]
    n, s = cols[0].shape[:2]
    labels = (["reference", "masked", "reconstruction", "target"] if two_views
              else ["masked", "reconstruction", "target"])
    gap, head = 4, 24
    canvas = np.full((head + n * (s + gap), len(cols) * (s + gap), 3), 255, np.uint8)
    for c, (col, label) in enumerate(zip(cols, labels)):
        x = c * (s + gap)
        cv2.putText(canvas, label, (x + 4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        for i in range(n):
            y = head + i * (s + gap)
            canvas[y:y + s, x:x + s] = col[i]
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
