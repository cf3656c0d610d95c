"""SIFT descriptors of oriented keypoints, vectorised over all keypoints of a batch (torch,
any device), by OpenCV's calcSIFTDescriptor rules: a 4x4 grid of 8-bin gradient
orientation histograms over a window rotated to the keypoint's angle, each sample voting
trilinearly (row, column, orientation) with a Gaussian weight; the 128 values normalised,
clipped at 0.2, renormalised and scaled by 512 then rounded and saturated to 0..255.
"""

from __future__ import annotations

import math

import torch

from mimic_fast.features._sift_pyramid import Pyramid, sample_budget, window_gradients

DESCR_WIDTH = 4  # spatial bins per side
DESCR_HIST_BINS = 8
DESCR_SCL_FCTR = 3.0  # spatial bin width, in keypoint scales
DESCR_MAG_THR = 0.2
INT_DESCR_FCTR = 512.0
FLT_EPSILON = 1.1920929e-07


def descriptors(pyr: Pyramid, octave, b, layer, x, y, scale, angle) -> torch.Tensor:
    """[N, 128] float32 descriptors (integer values 0..255, OpenCV's) of N keypoints given in
    their octave: (octave, b, layer) [N] int64, sub-pixel x, y and scale (sigma * 2^(layer
    offset / layers)) [N] float32, angle [N] float32 degrees as OpenCV reports it."""
    d, n = DESCR_WIDTH, DESCR_HIST_BINS
    dev = pyr.gauss.device
    count = b.numel()
    hist = torch.zeros((count, (d + 2) * (d + 2) * (n + 2)), dtype=torch.float32, device=dev)
    if count:
        ori = 360.0 - angle
        ori = torch.where((ori - 360.0).abs() < FLT_EPSILON, torch.zeros_like(ori), ori)
        rad = ori * (math.pi / 180)
        hist_width = DESCR_SCL_FCTR * scale
        cos_t = torch.cos(rad.double()).float() / hist_width  # float64: see _sift_pyramid
        sin_t = torch.sin(rad.double()).float() / hist_width
        heights = torch.tensor(pyr.heights, device=dev, dtype=torch.float64)[octave]
        widths = torch.tensor(pyr.widths, device=dev, dtype=torch.float64)[octave]
        diag = torch.sqrt(heights * heights + widths * widths).long()
        radius = torch.minimum(torch.round(hist_width * (math.sqrt(2.0) * (d + 1) * 0.5)).long(),
                               diag)
        row, col = torch.round(y).long(), torch.round(x).long()

        def in_grid(points, di, dj):  # OpenCV's rbin, cbin in (-1, d)
            ct, st = cos_t[points].unsqueeze(1), sin_t[points].unsqueeze(1)
            rbin = dj * st + di * ct + (d // 2 - 0.5)
            cbin = dj * ct - di * st + (d // 2 - 0.5)
            return (rbin > -1) & (rbin < d) & (cbin > -1) & (cbin < d)

        flat = hist.view(-1)
        for point, di, dj, mag, grad_ori in window_gradients(
                pyr, octave, b, layer, row, col, radius, sample_budget(dev), keep=in_grid):
            _vote(flat, point, di.float(), dj.float(), mag, grad_ori,
                  cos_t.index_select(0, point), sin_t.index_select(0, point),
                  ori.index_select(0, point))
    return _finish(hist)


def _vote(flat, point, i, j, mag, grad_ori, cos_t, sin_t, ori):
    """Trilinear votes of window samples (one per entry) into the flat view of the
    [N, 6*6*10] histograms (one spare cell each side in space, two wrap-around bins in
    orientation), OpenCV's weights."""
    d, n = DESCR_WIDTH, DESCR_HIST_BINS
    c_rot = j * cos_t - i * sin_t
    r_rot = j * sin_t + i * cos_t
    rbin = r_rot + (d // 2 - 0.5)
    cbin = c_rot + (d // 2 - 0.5)
    wgt = torch.exp(((c_rot * c_rot + r_rot * r_rot) * (-1.0 / (d * d * 0.5))).double()).float()
    obin = (grad_ori - ori) * (n / 360.0)
    mag = mag * wgt
    r0, c0, o0 = torch.floor(rbin), torch.floor(cbin), torch.floor(obin)
    fr, fc, fo = rbin - r0, cbin - c0, obin - o0
    o0 = o0.long().remainder(n)
    idx = point * ((d + 2) * (d + 2) * (n + 2)) + \
        ((r0.long() + 1) * (d + 2) + c0.long() + 1) * (n + 2) + o0
    v_r1 = mag * fr
    v_r0 = mag - v_r1
    for v_r, dr in ((v_r0, 0), (v_r1, d + 2)):
        v_c1 = v_r * fc
        v_c0 = v_r - v_c1
        for v_c, dc in ((v_c0, 0), (v_c1, 1)):
            v_o1 = v_c * fo
            step = (dr + dc) * (n + 2)
            flat.index_add_(0, idx + step, v_c - v_o1)
            flat.index_add_(0, idx + step + 1, v_o1)


def _finish(hist: torch.Tensor) -> torch.Tensor:
    """Fold the wrap-around orientation bins, keep the inner 4x4 cells, then OpenCV's
    normalisation: clip at 0.2 x the L2 norm, scale to 512 / new norm, round, saturate."""
    d, n = DESCR_WIDTH, DESCR_HIST_BINS
    h = hist.view(-1, d + 2, d + 2, n + 2)[:, 1:d + 1, 1:d + 1]
    desc = h[..., :n].clone()
    desc[..., :2] += h[..., n:n + 2]
    desc = desc.reshape(-1, d * d * n)
    thr = torch.sqrt((desc * desc).sum(1, keepdim=True)) * DESCR_MAG_THR
    desc = torch.minimum(desc, thr)
    scale = INT_DESCR_FCTR / torch.sqrt((desc * desc).sum(1, keepdim=True)).clamp(min=FLT_EPSILON)
    return torch.round(desc * scale).clamp(0, 255)
