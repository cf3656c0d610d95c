"""``mimic-fast eval``: reconstruction loss on held-out pairs with one fixed mask per pair
(comparable across checkpoints: MIMIC Table 3 protocol), how much the second view helps,
and a PNG grid (MIMIC Figure 13).

Each pair's masked view and patch mask come from a generator keyed by (seed, crc32(key)), so
the same pair is masked the same way for every checkpoint, batch size and dataset around it.
No augmentation. Reported, averaged over pairs:

* ``loss``: the training objective, MSE over the masked patches against per-patch
  normalised targets (when the model uses norm_pix_loss, as CroCo/MAE do);
* ``loss_shuffled_reference`` (CroCo): the same, with the same masks, each target paired with
  another pair's reference view (:func:`reference_partners`: from another source when the
  evaluated pairs have several); ``cross_view_gain`` = ``loss_shuffled_reference - loss``,
  > 0 when the model uses its true second view. A single-view model (MAE) sees no reference,
  so both are None for it (its shuffled loss would equal ``loss`` by construction);
* ``pixel_mse``: MSE over the masked pixels of the reconstruction in RGB [0, 1] units (the
  prediction de-normalised with the target patch's own mean and std, as MAE does: the
  picture borrows each masked patch's brightness and contrast from the truth);
* ``seen_in_training``: how many evaluated pairs the run trained on (a warning when > 0).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import numpy as np
import torch

from mimic_fast.data.index import DataError, holdout_rows, open_index, split as split_index
from mimic_fast.data.loader import PairDataset, make_loader
from mimic_fast.data.transforms import PairTransform, denormalize, normalize
from mimic_fast.dataset.paths import resolve_data_path
from mimic_fast.train import checkpoint as ckpt_io
from mimic_fast.train.config import EvalConfig, TrainConfig
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


def reference_partners(keys: list[str]) -> np.ndarray:
    """For each evaluated pair, the pair whose reference view replaces its own in
    ``loss_shuffled_reference``: half-way round the list among the pairs of other sources
    (another scene, so the stand-in shares no content by accident), or among all the other
    pairs when every pair has the same source. Depends only on the list, not on batching."""
    from mimic_fast.dataset.schema import parse_key

    def source(key: str) -> str:
        try:
            return parse_key(key)[0]
        except ValueError:  # not a mined pair key (e.g. the published CSV layout)
            return key

    n = len(keys)
    codes = np.unique([source(k) for k in keys], return_inverse=True)[1].reshape(-1)
    rows = np.arange(n)
    partners = (rows + 1 + (n - 1) // 2) % n  # half-way round among all the other pairs
    for code in np.unique(codes):
        members, others = np.flatnonzero(codes == code), np.flatnonzero(codes != code)
        if len(others):  # half-way round the others, counting on from each member
            after = np.searchsorted(others, members, side="right")
            partners[members] = others[(after + len(others) // 2) % len(others)]
    return partners


class _WithShuffledReference(torch.utils.data.Dataset):
    """A pair's sample plus ``shuffled_reference``: its partner pair's reference view."""

    def __init__(self, dataset: PairDataset, partners: np.ndarray):
        self.dataset, self.partners = dataset, partners

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        sample = self.dataset[i]
        sample["shuffled_reference"] = self.dataset[int(self.partners[i])]["reference"]
        return sample


def seen_in_training(cfg: TrainConfig, data_path: str, keys: list[str], run: Path) -> int | None:
    """How many of ``keys`` (pairs of ``data_path``) the run trained on: the pairs its holdout
    did not keep out, of its own dataset. None when the run's dataset cannot be read."""
    trained = ~holdout_rows(keys, cfg.data.holdout)
    if _same_path(data_path, cfg.data.path):
        return int(trained.sum())
    try:  # another dataset: count the pairs that are also in the run's training split
        run_keys = set(split_index(open_index(cfg.data.path), cfg.data.holdout, "train").keys)
    except (DataError, OSError) as exc:
        log.warning("cannot check which evaluated pairs run %s trained on (its dataset %s: %s)",
                    run, cfg.data.path, exc)
        return None
    return sum(k in run_keys for k in keys)


def _same_path(a: str, b: str) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return a == b


@torch.no_grad()
def evaluate(checkpoint: str | Path, data: str | None = None, split: str = EvalConfig.split,
             batch_size: int = EvalConfig.batch_size, max_pairs: int | None = EvalConfig.max_pairs,
             device: str = EvalConfig.device, out: str | Path | None = None,
             num_images: int = EvalConfig.num_images, seed: int = EvalConfig.seed,
             num_workers: int = EvalConfig.num_workers) -> dict:
    """Evaluate a run folder or checkpoint file; writes eval-STEP.json and eval-STEP.png."""
    checkpoint = Path(checkpoint)
    dev = torch.device(resolve_device(device))
    state = ckpt_io.load(checkpoint)
    cfg = TrainConfig.from_dict(state["config"])
    run = checkpoint if checkpoint.is_dir() else checkpoint.parent
    data_path = str(data) if data else cfg.data.path
    if data and resolve_data_path(data_path).kind != "urls":
        data_path = str(Path(data_path).absolute())
    if (not data and resolve_data_path(data_path).kind != "urls"
            and not Path(data_path).is_absolute() and not Path(data_path).exists()):
        # a run from before configs stored absolute paths: relative to where it was started
        raise ValueError(f"run {run} records its dataset as the relative path {data_path!r}; "
                         "pass --data")
    if split == "auto":
        split = "holdout" if cfg.data.holdout > 0 and _same_path(data_path, cfg.data.path) else "all"
    index = split_index(open_index(data_path), cfg.data.holdout, split)
    if max_pairs is not None:
        index = index.subset(np.arange(min(max_pairs, len(index))))
    seen = seen_in_training(cfg, data_path, list(index.keys), run)
    if seen:
        log.warning("%d of the %d evaluated pairs were seen in training (%s): the loss "
                    "measures memory, not generalisation; train with --holdout and evaluate "
                    "the held-out split", seen, len(index),
                    "the run had no --holdout" if cfg.data.holdout <= 0 else f"split {split}")

    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.to(dev).eval()
    two_views = model.cfg.arch == "croco"
    mc = model.cfg
    transform = PairTransform(mc.img_size, mc.num_patches, mc.num_masked, two_views)
    dataset = PairDataset(index, transform, seed, key_by="key")
    partners = reference_partners(list(index.keys)) if two_views and len(index) > 1 else None
    if partners is not None:
        dataset = _WithShuffledReference(dataset, partners)
    # make_loader: forkserver workers (the model, maybe on CUDA, is set up by now); in order.
    loader = make_loader(dataset, dataclasses.replace(cfg.data, num_workers=num_workers),
                         batch_size, drop_last=False)
    bf16 = dev.type == "cuda"
    losses, shuffled, pixel, keys, grid_rows = [], [], [], [], []

    def predict(target, reference, mask):
        args = (target,) if reference is None else (target, normalize(reference.to(dev)))
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=bf16):
            return model(*args, mask=mask)[1:]

    for batch in loader:
        target = normalize(batch["target"].to(dev))
        pred, mask = predict(target, batch.get("reference"), batch["mask"].to(dev))
        loss, pix, recon = per_pair_losses(model, target, pred, mask)
        if partners is not None:
            pred_s, _ = predict(target, batch["shuffled_reference"], mask)
            shuffled += per_pair_losses(model, target, pred_s, mask)[0].tolist()
        losses += loss.tolist()
        pixel += pix.tolist()
        keys += [index.keys[i] for i in batch["index"].tolist()]
        if sum(len(r[0]) for r in grid_rows) < num_images:
            grid_rows.append(_grid_tiles(model, batch, recon, mask, two_views))
    if not losses:
        raise ValueError(f"no pairs to evaluate in {data_path} ({split})")

    out = Path(out) if out else run / "eval"
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"eval-step{state['step']:08d}"
    loss_shuffled = float(np.mean(shuffled)) if shuffled else None
    per_pair = [{"key": k, "loss": a, "pixel_mse": b} for k, a, b in zip(keys, losses, pixel)]
    if shuffled:
        for row, s_loss, j in zip(per_pair, shuffled, partners):
            row.update(loss_shuffled_reference=s_loss, reference_from=index.keys[int(j)])
    result = {"step": state["step"], "checkpoint": str(checkpoint.absolute()), "model": cfg.model,
              "views": 2 if two_views else 1, "data": str(data_path), "split": split,
              "seed": seed, "pairs": len(losses), "seen_in_training": seen,
              "loss": float(np.mean(losses)), "loss_shuffled_reference": loss_shuffled,
              "cross_view_gain": None if loss_shuffled is None else loss_shuffled - float(np.mean(losses)),
              "pixel_mse": float(np.mean(pixel)), "per_pair": per_pair,
              "json": str(stem.with_suffix(".json").absolute()),
              "png": str(stem.with_suffix(".png").absolute())}
    _write_grid(stem.with_suffix(".png"), grid_rows, num_images, two_views)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _grid_tiles(model, batch, recon, mask, two_views):
    """Columns of uint8 [B, H, W, 3]: (reference,) masked target, prediction, target."""
    target = batch["target"].permute(0, 2, 3, 1).numpy()
    p = model.patch_size
    g = model.cfg.grid_size
    pix_mask = mask.view(-1, g, g).repeat_interleave(p, 1).repeat_interleave(p, 2).cpu().numpy()
    masked = np.where(pix_mask[..., None], np.uint8(96), target)
    cols = [masked, (recon.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8), target]
    if two_views:
        cols.insert(0, batch["reference"].permute(0, 2, 3, 1).numpy())
    return cols


GRID_HEADER = 62  # pixels above the first row: the column labels and GRID_NOTE
GRID_NOTE = ("prediction: masked patches un-normalised with each target patch's own mean/std",
             "(as MAE shows it: brightness and contrast come from the truth); visible = target")


def _write_grid(path: Path, rows, num_images: int, two_views: bool) -> None:
    import cv2

    cols = [np.concatenate([r[c] for r in rows])[:num_images] for c in range(len(rows[0]))]
    n, s = cols[0].shape[:2]
    labels = (["reference", "masked target", "prediction", "target"] if two_views
              else ["masked target", "prediction", "target"])
    gap, head = 4, GRID_HEADER
    canvas = np.full((head + n * (s + gap), len(cols) * (s + gap), 3), 255, np.uint8)
    text = dict(fontFace=cv2.FONT_HERSHEY_SIMPLEX, color=(0, 0, 0), thickness=1, lineType=cv2.LINE_AA)
    for c, (col, label) in enumerate(zip(cols, labels)):
        x = c * (s + gap)
        cv2.putText(canvas, label, (x + 4, 18), fontScale=0.55, **text)
        for i in range(n):
            y = head + i * (s + gap)
            canvas[y:y + s, x:x + s] = col[i]
    for line, note in enumerate(GRID_NOTE):
        cv2.putText(canvas, note, (4, 40 + 16 * line), fontScale=0.4, **text)
    if not cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
