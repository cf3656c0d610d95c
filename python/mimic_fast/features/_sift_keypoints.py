"""SIFT keypoints from DoG extrema, vectorised over all candidates of a batch (torch, any
device): sub-pixel refinement with OpenCV's contrast and edge tests, then the dominant
orientations from the 36-bin gradient histogram. The rules are OpenCV's
(``cv2.SIFT_create()``); the arithmetic is float32 as there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mimic_fast.features._sift_pyramid import IMG_BORDER, Pyramid, sample_budget, window_gradients

MAX_INTERP_STEPS = 5
ORI_HIST_BINS = 36
ORI_SIG_FCTR = 1.5  # orientation window sigma, in keypoint scales
ORI_RADIUS = 3 * ORI_SIG_FCTR
ORI_PEAK_RATIO = 0.8


@dataclass
class Keypoints:
    """N refined keypoints; positions in the coordinates of their octave."""

    octave: torch.Tensor  # [N] int64, 0 = the 2x-upsampled octave
    b: torch.Tensor  # [N] int64 frame
    layer: torch.Tensor  # [N] int64 DoG layer in 1..layers
    row: torch.Tensor  # [N] int64
    col: torch.Tensor  # [N] int64
    xc: torch.Tensor  # [N] float32 sub-pixel offsets (x, y, layer), each in (-0.5, 0.5)
    xr: torch.Tensor
    xi: torch.Tensor
    response: torch.Tensor  # [N] float32 |interpolated DoG| on the 0..1 scale

    def select(self, m: torch.Tensor) -> "Keypoints":
        return Keypoints(*(getattr(self, f)[m] for f in self.__dataclass_fields__))


def refine(pyr: Pyramid, cand: torch.Tensor, contrast_threshold: float,
           edge_threshold: float) -> Keypoints:
    """OpenCV's adjustLocalExtrema on every candidate at once: up to MAX_INTERP_STEPS Newton
    steps on the DoG (3x3 Hessian solved by Cramer's rule, a singular one giving a zero
    step), moving to the nearest pixel/layer while an offset is >= 0.5; then the contrast
    (|D(x)| * layers >= contrast_threshold) and edge (tr^2 * e < (e+1)^2 * det) tests."""
    dev = pyr.dog.device
    L = pyr.layers
    heights = torch.tensor(pyr.heights, device=dev, dtype=torch.long)
    widths = torch.tensor(pyr.widths, device=dev, dtype=torch.long)
    offsets = torch.tensor(pyr.dog_offset, device=dev, dtype=torch.long)
    o, b, layer, r, c = (cand[:, i].clone() for i in range(5))
    H, W = heights[o], widths[o]
    img_scale = 1.0 / 255
    deriv_scale, second_scale, cross_scale = img_scale * 0.5, img_scale, img_scale * 0.25

    def derivatives(idx, layer, r, c):
        h, w = H[idx], W[idx]
        plane = h * w
        centre = offsets[o[idx]] + ((b[idx] * (L + 2) + layer) * h + r) * w + c

        def at(dl, dr, dc):
            return pyr.dog.index_select(0, centre + dl * plane + dr * w + dc)

        v = at(0, 0, 0)
        dD = torch.stack([(at(0, 0, 1) - at(0, 0, -1)) * deriv_scale,
                          (at(0, 1, 0) - at(0, -1, 0)) * deriv_scale,
                          (at(1, 0, 0) - at(-1, 0, 0)) * deriv_scale], 1)
        v2 = v * 2
        dxx = (at(0, 0, 1) + at(0, 0, -1) - v2) * second_scale
        dyy = (at(0, 1, 0) + at(0, -1, 0) - v2) * second_scale
        dss = (at(1, 0, 0) + at(-1, 0, 0) - v2) * second_scale
        dxy = (at(0, 1, 1) - at(0, 1, -1) - at(0, -1, 1) + at(0, -1, -1)) * cross_scale
        dxs = (at(1, 0, 1) - at(1, 0, -1) - at(-1, 0, 1) + at(-1, 0, -1)) * cross_scale
        dys = (at(1, 1, 0) - at(1, -1, 0) - at(-1, 1, 0) + at(-1, -1, 0)) * cross_scale
        return v, dD, (dxx, dyy, dss, dxy, dxs, dys)

    n = cand.shape[0]
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    alive = torch.ones(n, dtype=torch.bool, device=dev)
    X = torch.zeros((n, 3), dtype=torch.float32, device=dev)
    for _ in range(MAX_INTERP_STEPS):
        idx = (alive & ~done).nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        _, dD, (dxx, dyy, dss, dxy, dxs, dys) = derivatives(idx, layer[idx], r[idx], c[idx])
        step = _solve_sym3(dxx, dyy, dss, dxy, dxs, dys, dD)
        xc, xr, xi = -step[:, 0], -step[:, 1], -step[:, 2]
        X[idx] = torch.stack([xc, xr, xi], 1)
        conv = (xi.abs() < 0.5) & (xr.abs() < 0.5) & (xc.abs() < 0.5)
        done[idx[conv]] = True
        mv = ~conv
        huge = (xi.abs() > float(2**31 // 3)) | (xr.abs() > float(2**31 // 3)) | \
               (xc.abs() > float(2**31 // 3)) | ~torch.isfinite(step).all(1)
        alive[idx[mv & huge]] = False
        go = idx[mv & ~huge]
        sel = mv & ~huge
        c[go] += torch.round(xc[sel]).long()
        r[go] += torch.round(xr[sel]).long()
        layer[go] += torch.round(xi[sel]).long()
        h, w = H[go], W[go]
        out = (layer[go] < 1) | (layer[go] > L) | (c[go] < IMG_BORDER) | \
              (c[go] >= w - IMG_BORDER) | (r[go] < IMG_BORDER) | (r[go] >= h - IMG_BORDER)
        alive[go[out]] = False
    ok = (alive & done).nonzero().squeeze(1)
    v, dD, (dxx, dyy, _, dxy, _, _) = derivatives(ok, layer[ok], r[ok], c[ok])
    Xk = X[ok]
    t = (dD * Xk).sum(1)
    contr = v * img_scale + t * 0.5
    tr = dxx + dyy
    det = dxx * dyy - dxy * dxy
    e = edge_threshold
    keep = (contr.abs() * L >= contrast_threshold) & (det > 0) & \
           (tr * tr * e < (e + 1) * (e + 1) * det)
    ok = ok[keep]
    Xk = Xk[keep]
    kp = Keypoints(o[ok], b[ok], layer[ok], r[ok], c[ok], Xk[:, 0].contiguous(),
                   Xk[:, 1].contiguous(), Xk[:, 2].contiguous(), contr[keep].abs())
    return _unique(kp, pyr)


def _solve_sym3(dxx, dyy, dss, dxy, dxs, dys, rhs):
    """Solve the symmetric 3x3 system [[dxx dxy dxs] [dxy dyy dys] [dxs dys dss]] x = rhs
    by Cramer's rule (as OpenCV's Matx solve for 3x3); a zero determinant gives x = 0."""
    a00, a01, a02, a11, a12, a22 = dxx, dxy, dxs, dyy, dys, dss
    b0, b1, b2 = rhs[:, 0], rhs[:, 1], rhs[:, 2]
    det = a00 * (a11 * a22 - a12 * a12) - a01 * (a01 * a22 - a12 * a02) + \
        a02 * (a01 * a12 - a11 * a02)
    inv = torch.where(det != 0, 1.0 / torch.where(det != 0, det, torch.ones_like(det)),
                      torch.zeros_like(det))
    x0 = inv * (b0 * (a11 * a22 - a12 * a12) - a01 * (b1 * a22 - a12 * b2) +
                a02 * (b1 * a12 - a11 * b2))
    x1 = inv * (a00 * (b1 * a22 - a12 * b2) - b0 * (a01 * a22 - a12 * a02) +
                a02 * (a01 * b2 - b1 * a02))
    x2 = inv * (a00 * (a11 * b2 - b1 * a12) - a01 * (a01 * b2 - b1 * a02) +
                b0 * (a01 * a12 - a11 * a02))
    return torch.stack([x0, x1, x2], 1)


def _unique(kp: Keypoints, pyr: Pyramid) -> Keypoints:
    """Drop candidates that converged to the same (octave, frame, layer, pixel): they are
    the same keypoint (OpenCV removes such exact duplicates after detection). The first
    occurrence in candidate order is kept, so the order stays batch-independent."""
    if kp.b.numel() == 0:
        return kp
    L = pyr.layers
    maxh, maxw = max(pyr.heights), max(pyr.widths)
    key = (((kp.octave * pyr.batch + kp.b) * (L + 2) + kp.layer) * maxh + kp.row) * maxw + kp.col
    uniq, inverse = torch.unique(key, return_inverse=True)
    pos = torch.arange(key.numel(), device=key.device)
    first = torch.full((uniq.numel(),), key.numel(), dtype=torch.long, device=key.device)
    first.scatter_reduce_(0, inverse, pos, reduce="amin")
    return kp.select(first.sort().values)


def scale_in_octave(kp: Keypoints, layers: int, sigma: float) -> torch.Tensor:
    """sigma * 2^((layer + xi) / layers): the keypoint's blur in its octave's pixels."""
    t = ((kp.layer.float() + kp.xi) / layers).double()  # float64: see _sift_pyramid
    return (sigma * torch.exp2(t)).float()


@dataclass
class Oriented:
    """M oriented keypoints: index into the Keypoints and OpenCV's angle in degrees."""

    index: torch.Tensor  # [M] int64
    angle: torch.Tensor  # [M] float32, 360 - dominant gradient direction, in [0, 360)


def orientations(pyr: Pyramid, kp: Keypoints, sigma: float) -> Oriented:
    """OpenCV's calcOrientationHist and peak rule: gradients of the keypoint's Gaussian
    image in a square window of radius round(4.5 s) (s the scale in the octave), weighted
    by exp(-d^2 / (2 (1.5 s)^2)) and the gradient magnitude, voted into 36 bins (nearest
    bin), smoothed with [1 4 6 4 1]/16 circularly; every local peak >= 80% of the highest
    gives a keypoint, its bin refined by a parabola through the peak and its neighbours."""
    dev = pyr.gauss.device
    n = kp.b.numel()
    hist = torch.zeros((n, ORI_HIST_BINS), dtype=torch.float32, device=dev)
    if n:
        scl = scale_in_octave(kp, pyr.layers, sigma)
        radius = torch.round(ORI_RADIUS * scl).long()
        weight_sigma = ORI_SIG_FCTR * scl
        expf = -1.0 / (2.0 * weight_sigma * weight_sigma)
        flat = hist.view(-1)
        for point, di, dj, mag, ori in window_gradients(
                pyr, kp.octave, kp.b, kp.layer, kp.row, kp.col, radius, sample_budget(dev)):
            wgt = torch.exp(((di * di + dj * dj).float() * expf.index_select(0, point))
                            .double()).float()
            bins = torch.round(ori * (ORI_HIST_BINS / 360.0)).long().remainder(ORI_HIST_BINS)
            flat.index_add_(0, point * ORI_HIST_BINS + bins, wgt * mag)
    n_bins = ORI_HIST_BINS
    pad = torch.cat([hist[:, -2:], hist, hist[:, :2]], 1)
    smooth = (pad[:, :-4] + pad[:, 4:]) * (1.0 / 16) + (pad[:, 1:-3] + pad[:, 3:-1]) * (4.0 / 16) \
        + pad[:, 2:-2] * (6.0 / 16)
    left = smooth.roll(1, 1)
    right = smooth.roll(-1, 1)
    peak = (smooth > left) & (smooth > right) & \
        (smooth >= smooth.max(1, keepdim=True).values * ORI_PEAK_RATIO)
    k, j = peak.nonzero(as_tuple=True)
    lv, cv, rv = left[k, j], smooth[k, j], right[k, j]
    bin_ = j.float() + 0.5 * (lv - rv) / (lv - 2 * cv + rv)
    bin_ = torch.where(bin_ < 0, bin_ + n_bins, torch.where(bin_ >= n_bins, bin_ - n_bins, bin_))
    angle = 360.0 - (360.0 / n_bins) * bin_
    angle = torch.where((angle - 360.0).abs() < 1.1920929e-07, torch.zeros_like(angle), angle)
    return Oriented(k, angle)
