"""Batched SIFT (``mimic_fast.sift``): OpenCV's SIFT (``cv2.SIFT_create()`` defaults) for a
batch of grayscale frames in one call, in torch ops that run on the CPU and on CUDA alike.

The stages, each vectorised over every frame and keypoint of the batch:

1. scale space (:mod:`._sift_pyramid`): 2x bilinear upsampling, separable Gaussian blurs,
   DoG, 3x3x3 extrema;
2. keypoints (:mod:`._sift_keypoints`): sub-pixel refinement with the contrast and edge
   tests, then the 36-bin orientation histogram and its peaks;
3. descriptors (:mod:`._sift_descriptors`): 4x4x8 trilinear histograms, clipped and
   normalised, in OpenCV's integer scale.

The results are OpenCV's up to float rounding (the blur and atan2 differ in the last bits,
so an extremum at a threshold can flip); tests/features/test_batched_sift.py measures the
agreement. Nothing falls back to OpenCV.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from mimic_fast.features._sift_descriptors import descriptors as _descriptors
from mimic_fast.features._sift_keypoints import orientations, refine, scale_in_octave
from mimic_fast.features._sift_pyramid import build_pyramid, find_extrema

N_OCTAVE_LAYERS = 3
SIGMA = 1.6
CONTRAST_THRESHOLD = 0.04
EDGE_THRESHOLD = 10.0
FIRST_OCTAVE = -1  # the frame is upsampled 2x first
# frames per pyramid pass: at most this many pixels of 2x-upsampled base (about 100 bytes
# each across the Gaussian, DoG and gradient pyramids: ~13 GB at 2^27; twice that on CUDA,
# where bigger passes mean fewer kernel launches per frame)
MAX_BASE_PIXELS = 1 << 27


class SiftFeatures(NamedTuple):
    """SIFT of B frames, padded to K keypoints per frame (K = the largest count, or
    max_features); frame b's keypoints are the first counts[b] rows, strongest first,
    padding rows are zero. Coordinates are input-image pixels as OpenCV reports them
    (cv2.KeyPoint.pt: x right, y down, pixel centres at integers)."""

    xy: torch.Tensor  # [B, K, 2] float32
    size: torch.Tensor  # [B, K] float32, cv2.KeyPoint.size
    angle: torch.Tensor  # [B, K] float32 degrees in [0, 360), cv2.KeyPoint.angle
    response: torch.Tensor  # [B, K] float32, cv2.KeyPoint.response
    octave: torch.Tensor  # [B, K] int32, cv2.KeyPoint.octave (packed: octave, layer, sub-layer)
    descriptors: torch.Tensor  # [B, K, 128] float32 with integer values 0..255, or uint8
    counts: torch.Tensor  # [B] int64

    def frame(self, b: int, order: str = "strongest") -> tuple[np.ndarray, np.ndarray]:
        """Frame b's (xy [n, 2], descriptors [n, 128]) as float32 numpy arrays, the form of
        mimic_fast.features.sift.Features (the OpenCV path's per-view features).

        order: "strongest" first (as computed), or "opencv": the order cv2.SIFT returns (by
        x, y, then size descending, angle, response descending, octave descending: its
        duplicate filter's sort), so that what consumes the keypoints in order (matches fed
        to a RANSAC) sees OpenCV's sequence."""
        n = int(self.counts[b])
        xy = self.xy[b, :n].cpu().numpy().astype(np.float32)
        desc = self.descriptors[b, :n].cpu().numpy().astype(np.float32)
        if order == "opencv":
            keys = [getattr(self, f)[b, :n].cpu().numpy() for f in
                    ("octave", "response", "angle", "size")]
            perm = np.lexsort((-keys[0], -keys[1], keys[2], -keys[3], xy[:, 1], xy[:, 0]))
            xy, desc = xy[perm], desc[perm]
        elif order != "strongest":
            raise ValueError(f"order must be 'strongest' or 'opencv', got {order!r}")
        return xy, desc


def sift(images: Any, max_features: int | None = None, device: Any = None,
         uint8_descriptors: bool = False) -> SiftFeatures:
    """SIFT keypoints and descriptors of a batch of grayscale frames, as cv2.SIFT_create()
    with its defaults (3 layers per octave, sigma 1.6, contrast threshold 0.04, edge
    threshold 10, 2x upsampling first).

    Args:
        images: [B, H, W] (or one [H, W]) grayscale frames, uint8 or float on the 0..255
            scale (OpenCV's convention for float input), numpy array or torch tensor.
        max_features: keep at most this many keypoints per frame, the highest responses
            (OpenCV's nfeatures, except that ties at the cut are not all kept); None: all.
        device: where to compute: None (the tensor's device; numpy -> CPU), "cpu", "cuda"
            or a torch.device. The results live there.
        uint8_descriptors: return descriptors as uint8 (same values) instead of float32.

    Returns:
        :class:`SiftFeatures`.
    """
    frames = _as_frames(images, device)
    if max_features is not None and (not isinstance(max_features, (int, np.integer))
                                     or isinstance(max_features, bool) or max_features < 0):
        raise ValueError(f"max_features must be None or an integer >= 0, got {max_features!r}")
    bsz, h, w = frames.shape
    budget = MAX_BASE_PIXELS * (2 if frames.device.type == "cuda" else 1)
    step = max(1, budget // max(1, 4 * h * w))
    if bsz <= step:
        return _sift_frames(frames, max_features, uint8_descriptors)
    # a frame's result does not depend on its batch, so chunks only bound the memory
    parts = [_sift_frames(frames[s:s + step], max_features, uint8_descriptors)
             for s in range(0, bsz, step)]
    k = max(p.xy.shape[1] for p in parts)
    return SiftFeatures(*(torch.cat([_pad_to(t, k) for t in field]) if name != "counts"
                          else torch.cat(field)
                          for name, field in zip(SiftFeatures._fields, zip(*parts))))


def _pad_to(t: torch.Tensor, k: int) -> torch.Tensor:
    pad = torch.zeros((t.shape[0], k - t.shape[1], *t.shape[2:]), dtype=t.dtype, device=t.device)
    return torch.cat([t, pad], 1)


def _sift_frames(frames: torch.Tensor, max_features: int | None,
                 uint8_descriptors: bool) -> SiftFeatures:
    bsz = frames.shape[0]
    pyr = build_pyramid(frames, N_OCTAVE_LAYERS, SIGMA)
    threshold = float(np.floor(0.5 * CONTRAST_THRESHOLD / N_OCTAVE_LAYERS * 255))
    cand = find_extrema(pyr, threshold)
    kp = refine(pyr, cand, CONTRAST_THRESHOLD, EDGE_THRESHOLD)
    ori = orientations(pyr, kp, SIGMA)
    k = ori.index
    scl = scale_in_octave(kp, N_OCTAVE_LAYERS, SIGMA)[k]
    x_oct = kp.col[k].float() + kp.xc[k]
    y_oct = kp.row[k].float() + kp.xr[k]
    octave, b = kp.octave[k], kp.b[k]
    response = kp.response[k]
    order = _frame_order(b, response, bsz, max_features)
    octave, b, x_oct, y_oct, scl, response = (t[order] for t in (octave, b, x_oct, y_oct,
                                                                   scl, response))
    angle, layer, xi = ori.angle[order], kp.layer[k][order], kp.xi[k][order]
    desc = _descriptors(pyr, octave, b, layer, x_oct, y_oct, scl, angle)
    # octave pixels -> input pixels: OpenCV scales by 2^octave, then by 1/2 for the doubling
    to_input = (1 << octave).float() * 2.0 ** FIRST_OCTAVE
    xy = torch.stack([x_oct, y_oct], 1) * to_input.unsqueeze(1)
    size = scl * 2 * to_input
    packed = ((octave + FIRST_OCTAVE) & 255) + (layer << 8) + \
        (torch.round((xi + 0.5) * 255).long() << 16)
    if uint8_descriptors:
        desc = desc.to(torch.uint8)
    return _pad(b, bsz, xy, size, angle, response, packed.to(torch.int32), desc)


def _as_frames(images: Any, device: Any) -> torch.Tensor:
    """[B, H, W] float32 on the target device, from numpy/torch, uint8/float, 2-D or 3-D."""
    if isinstance(images, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(images))
    elif isinstance(images, torch.Tensor):
        t = images
    else:
        raise TypeError("images must be a numpy array or torch tensor, "
                        f"got {type(images).__name__}")
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise ValueError(f"images must have shape [B, H, W] or [H, W], got {list(t.shape)}")
    if not (t.dtype == torch.uint8 or t.dtype.is_floating_point):
        raise ValueError(f"images must be uint8 or float (0..255), got {t.dtype}")
    target = t.device if device is None else torch.device(device)
    return t.to(device=target, dtype=torch.float32).contiguous()


def _frame_order(b: torch.Tensor, response: torch.Tensor, bsz: int,
                 max_features: int | None) -> torch.Tensor:
    """Indices grouping keypoints by frame, strongest first (stable, so ties keep their
    detection order and a frame's result does not depend on the rest of the batch),
    keeping at most max_features per frame."""
    order = torch.sort(-response, stable=True).indices
    order = order[torch.sort(b[order], stable=True).indices]
    if max_features is not None:
        rank = _rank_in_frame(b[order], bsz)
        order = order[rank < max_features]
    return order


def _rank_in_frame(b_sorted: torch.Tensor, bsz: int) -> torch.Tensor:
    counts = torch.bincount(b_sorted, minlength=bsz)
    starts = torch.cumsum(counts, 0) - counts
    return torch.arange(b_sorted.numel(), device=b_sorted.device) - starts[b_sorted]


def _pad(b, bsz, xy, size, angle, response, octave, desc) -> SiftFeatures:
    """Scatter keypoints (grouped by frame) into [B, K] padded tensors."""
    dev = xy.device
    counts = torch.bincount(b, minlength=bsz)
    k = int(counts.max()) if bsz and b.numel() else 0
    rank = _rank_in_frame(b, bsz)

    def padded(v, shape_tail=()):
        out = torch.zeros((bsz, k, *shape_tail), dtype=v.dtype, device=dev)
        out[b, rank] = v
        return out

    return SiftFeatures(padded(xy, (2,)), padded(size), padded(angle), padded(response),
                        padded(octave), padded(desc, (128,)), counts)
