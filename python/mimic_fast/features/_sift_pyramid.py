"""SIFT scale space of a batch of frames: the Gaussian and difference-of-Gaussian pyramids
and the 3x3x3 DoG extrema, as torch ops batched over the frames (any device), and the
gradient windows that the keypoint and descriptor stages read from it.

OpenCV's construction (``cv2.SIFT_create()`` defaults): the frame upsampled 2x (bilinear,
half-pixel centres) and blurred from the assumed 0.5 to sigma, then per octave
``layers + 3`` Gaussian images, each the previous one blurred incrementally; an octave
starts from the previous octave's image ``layers`` taken every second pixel.

Each pyramid lives in ONE flat buffer (all octaves back to back) so that the later stages
can gather from every octave with a single index: :class:`Pyramid` keeps per octave its
offset, height and width.

Transcendental functions (atan2, exp, cos, ...) are evaluated in float64 and rounded to
float32 throughout the SIFT modules: torch's CPU kernels compute the SIMD body and the
scalar tail of a tensor with different float32 approximations, so a value's last bit would
depend on its position in the tensor, i.e. on the rest of the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

INIT_SIGMA = 0.5  # blur assumed in the input frame
IMG_BORDER = 5  # extrema closer than this to an octave's edge are not searched


@dataclass
class Pyramid:
    """gauss: flat [sum_o B * (layers + 3) * H_o * W_o], dog: flat [sum_o B * (layers + 2)
    * H_o * W_o], both float32; octave o's block starts at gauss_offset[o] / dog_offset[o]
    and is laid out [B, layer, H_o, W_o] (row-major). magnitude and direction (degrees in
    [0, 360)) of the gradient of the Gaussian images share gauss's layout; they are filled
    for layers 1..layers (where keypoints live) at pixels one inside the image edge."""

    gauss: torch.Tensor
    dog: torch.Tensor
    magnitude: torch.Tensor
    direction: torch.Tensor
    heights: list[int]
    widths: list[int]
    gauss_offset: list[int]
    dog_offset: list[int]
    batch: int
    layers: int  # layers per octave (OpenCV's nOctaveLayers)

    def gauss_octave(self, o: int) -> torch.Tensor:
        n = self.batch * (self.layers + 3) * self.heights[o] * self.widths[o]
        return self.gauss[self.gauss_offset[o]:self.gauss_offset[o] + n].view(
            self.batch, self.layers + 3, self.heights[o], self.widths[o])

    def dog_octave(self, o: int) -> torch.Tensor:
        n = self.batch * (self.layers + 2) * self.heights[o] * self.widths[o]
        return self.dog[self.dog_offset[o]:self.dog_offset[o] + n].view(
            self.batch, self.layers + 2, self.heights[o], self.widths[o])


def octave_count(height: int, width: int) -> int:
    """OpenCV's number of octaves for a frame (counted on the 2x-upsampled base)."""
    side = min(2 * height, 2 * width)
    return max(0, int(round(math.log2(side) - 2)) + 1)


def layer_sigmas(layers: int, sigma: float) -> list[float]:
    """The incremental blur from layer i-1 to layer i of an octave (index 0: sigma itself)."""
    k = 2.0 ** (1.0 / layers)
    out = [sigma]
    for i in range(1, layers + 3):
        prev = k ** (i - 1) * sigma
        out.append(math.sqrt((prev * k) ** 2 - prev ** 2))
    return out


def gaussian_kernel(sigma: float, device) -> torch.Tensor:
    """OpenCV's float kernel for a float image: size round(8 sigma + 1) made odd."""
    size = int(round(sigma * 8 + 1)) | 1
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-x * x / (2 * sigma * sigma))
    return (k / k.sum()).to(torch.float32).to(device)


def _reflect101_index(n: int, radius: int, device) -> torch.Tensor:
    """Indices of 0..n-1 padded by `radius` each side with OpenCV's BORDER_REFLECT_101,
    reflecting as often as needed when radius >= n (the smallest octaves)."""
    i = torch.arange(-radius, n + radius, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.remainder(period)
    return torch.where(i > n - 1, period - i, i)


def _pad_reflect101(x: torch.Tensor, r: int, dim: int) -> torch.Tensor:
    """[N, H, W] padded by r on both sides of dim 1 or 2, BORDER_REFLECT_101 (torch's
    "reflect" pad where it applies, r < size; the general index otherwise)."""
    n = x.shape[dim]
    if r == 0:
        return x
    if r < n:
        if dim == 2:
            return F.pad(x, (r, r), mode="reflect")
        return F.pad(x.unsqueeze(1), (0, 0, r, r), mode="reflect").squeeze(1)
    return x.index_select(dim, _reflect101_index(n, r, x.device))


def gaussian_blur(img: torch.Tensor, sigma: float, exact: bool | None = None) -> torch.Tensor:
    """Separable Gaussian blur of [N, H, W] float32 images, border reflect-101.

    exact (the default off CUDA): a sum of shifted slices, whose elementwise float ops give
    every frame the same bits whatever the batch size, so a frame's keypoints never depend
    on the rest of the batch (CPU conv2d picks its algorithm by batch size). Otherwise one
    conv2d per direction (cuDNN: one pass over the image instead of one per tap; the GPU's
    atomic histogram sums are not bit-reproducible anyway). Both agree to float rounding."""
    if exact is None:
        exact = img.device.type != "cuda"
    k = gaussian_kernel(sigma, img.device)
    r = (k.numel() - 1) // 2
    n, h, w = img.shape
    x = _pad_reflect101(img, r, 2)
    if not exact:
        # full float32: TF32 (cuDNN's default) would move DoG values by ~0.1 grey levels
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            x = F.conv2d(x.unsqueeze(1), k.view(1, 1, 1, -1)).squeeze(1)
            x = _pad_reflect101(x, r, 1)
            return F.conv2d(x.unsqueeze(1), k.view(1, 1, -1, 1)).squeeze(1)
    k = k.tolist()
    acc = x[:, :, r:r + w] * k[r]
    for i in range(r):
        acc.add_(x[:, :, i:i + w], alpha=k[i]).add_(x[:, :, 2 * r - i:2 * r - i + w], alpha=k[i])
    x = _pad_reflect101(acc, r, 1)
    acc = x[:, r:r + h] * k[r]
    for i in range(r):
        acc.add_(x[:, i:i + h], alpha=k[i]).add_(x[:, 2 * r - i:2 * r - i + h], alpha=k[i])
    return acc


def upsampled_base(frames: torch.Tensor, sigma: float) -> torch.Tensor:
    """[B, H, W] float32 (0..255) -> [B, 2H, 2W]: bilinear 2x, then blur from 2 x INIT_SIGMA
    to sigma (OpenCV's initial image with the default doubling)."""
    up = F.interpolate(frames.unsqueeze(1), scale_factor=2, mode="bilinear",
                       align_corners=False).squeeze(1)
    sig_diff = math.sqrt(max(sigma * sigma - 4 * INIT_SIGMA * INIT_SIGMA, 0.01))
    return gaussian_blur(up, sig_diff)


def build_pyramid(frames: torch.Tensor, layers: int, sigma: float) -> Pyramid:
    """The Gaussian and DoG pyramids of [B, H, W] float32 frames on their device."""
    b, h, w = frames.shape
    n_oct = octave_count(h, w)
    heights, widths = [], []
    hh, ww = 2 * h, 2 * w
    for _ in range(n_oct):
        heights.append(hh)
        widths.append(ww)
        hh, ww = hh // 2, ww // 2
    g_off, d_off, g_tot, d_tot = [], [], 0, 0
    for hh, ww in zip(heights, widths):
        g_off.append(g_tot)
        d_off.append(d_tot)
        g_tot += b * (layers + 3) * hh * ww
        d_tot += b * (layers + 2) * hh * ww
    def empty(n):
        return torch.empty(n, dtype=torch.float32, device=frames.device)

    pyr = Pyramid(empty(g_tot), empty(d_tot), empty(g_tot), empty(g_tot),
                  heights, widths, g_off, d_off, b, layers)
    sig = layer_sigmas(layers, sigma)
    for o in range(n_oct):
        g = pyr.gauss_octave(o)
        if o == 0:
            g[:, 0] = upsampled_base(frames, sigma)
        else:  # OpenCV's INTER_NEAREST halving: every second pixel from the first
            prev = pyr.gauss_octave(o - 1)[:, layers]
            g[:, 0] = prev[:, 0:2 * heights[o]:2, 0:2 * widths[o]:2]
        for i in range(1, layers + 3):
            g[:, i] = gaussian_blur(g[:, i - 1], sig[i])
        torch.sub(g[:, 1:], g[:, :-1], out=pyr.dog_octave(o))
        _gradients(pyr, o)
    return pyr


def _gradients(pyr: Pyramid, o: int) -> None:
    """Gradient magnitude and direction of octave o's layers 1..layers, by OpenCV's
    central differences: dx = I(x+1) - I(x-1), dy = I(y-1) - I(y+1); the direction is
    atan2(dy, dx) in degrees, in [0, 360)."""
    g = pyr.gauss_octave(o)[:, 1:pyr.layers + 1]
    if g.shape[-1] < 3 or g.shape[-2] < 3:
        return
    shape = (pyr.batch, pyr.layers + 3, pyr.heights[o], pyr.widths[o])
    n = shape[0] * shape[1] * shape[2] * shape[3]
    off = pyr.gauss_offset[o]
    mag = pyr.magnitude[off:off + n].view(shape)[:, 1:pyr.layers + 1, 1:-1, 1:-1]
    ang = pyr.direction[off:off + n].view(shape)[:, 1:pyr.layers + 1, 1:-1, 1:-1]
    dx = g[:, :, 1:-1, 2:] - g[:, :, 1:-1, :-2]
    dy = g[:, :, :-2, 1:-1] - g[:, :, 2:, 1:-1]
    torch.sqrt(dx * dx + dy * dy, out=mag) if mag.is_contiguous() else mag.copy_(
        torch.sqrt(dx * dx + dy * dy))
    a = torch.rad2deg(torch.atan2(dy.double(), dx.double())).float()
    ang.copy_(torch.where(a < 0, a + 360.0, a))


def find_extrema(pyr: Pyramid, threshold: float) -> torch.Tensor:
    """Candidate extrema [M, 5] int64 (octave, b, layer, row, col): DoG values with
    |v| > threshold that are >= (maxima, v > 0) or <= (minima, v < 0) all 26 neighbours,
    in layers 1..layers, at least IMG_BORDER pixels from the octave's edge (OpenCV's scan).
    Rows are ordered by octave, then frame, layer, row, column."""
    found = []
    for o in range(len(pyr.heights)):
        h, w = pyr.heights[o], pyr.widths[o]
        if h <= 2 * IMG_BORDER or w <= 2 * IMG_BORDER:
            continue
        d = pyr.dog_octave(o)  # [B, layers + 2, H, W]
        mx, mn = _max3(d, 1), _min3(d, 1)  # over the layer triple, then rows, then columns
        mx, mn = _max3(_max3(mx, 2), 3), _min3(_min3(mn, 2), 3)
        v = d[:, 1:-1, 1:-1, 1:-1]
        keep = torch.zeros(d[:, 1:-1].shape, dtype=torch.bool, device=d.device)
        keep[:, :, 1:-1, 1:-1] = ((v > threshold) & (v >= mx)) | ((v < -threshold) & (v <= mn))
        keep[:, :, :IMG_BORDER] = False
        keep[:, :, h - IMG_BORDER:] = False
        keep[:, :, :, :IMG_BORDER] = False
        keep[:, :, :, w - IMG_BORDER:] = False
        idx = keep.nonzero()
        idx[:, 1] += 1  # layer index within the DoG octave
        found.append(torch.cat([torch.full_like(idx[:, :1], o), idx], 1))
    if not found:
        return torch.zeros((0, 5), dtype=torch.int64, device=pyr.dog.device)
    return torch.cat(found)


def sample_budget(device: torch.device) -> int:
    """Window samples gathered at once: bounds the temporaries (~100 bytes a sample)."""
    return 1 << (25 if device.type == "cuda" else 22)


def window_gradients(pyr: Pyramid, octave, b, layer, row, col, radius, budget: int,
                     keep=None):
    """Gradients of Gaussian images in square windows around points.

    For points (octave, b, layer, row, col) with window radius `radius` (all [N] int64,
    layer in 1..layers), yields per group of points of one radius the usable samples,
    flattened: (point [M] index of the sample's point, di, dj [M] its row/column offset,
    magnitude, direction [M] float32 from the pyramid's gradient images). A sample is
    usable when it lies at least one pixel inside its image (OpenCV's rule) and, if given,
    keep(points [n], di [S], dj [S]) -> [n, S] bool holds. At most `budget` window samples
    per group, so memory stays bounded whatever the number of points."""
    dev = pyr.gauss.device
    l3 = pyr.layers + 3
    heights = torch.tensor(pyr.heights, device=dev, dtype=torch.long)
    widths = torch.tensor(pyr.widths, device=dev, dtype=torch.long)
    offsets = torch.tensor(pyr.gauss_offset, device=dev, dtype=torch.long)
    for R in torch.unique(radius).tolist():
        members = (radius == R).nonzero().squeeze(1)
        side = 2 * R + 1
        d = torch.arange(-R, R + 1, device=dev)
        di = d.view(-1, 1).expand(side, side).reshape(-1)
        dj = d.view(1, -1).expand(side, side).reshape(-1)
        chunk = max(1, budget // (side * side))
        for s in range(0, members.numel(), chunk):
            sel = members[s:s + chunk]
            o = octave[sel]
            h, w = heights[o], widths[o]
            y = row[sel].unsqueeze(1) + di
            x = col[sel].unsqueeze(1) + dj
            use = (y > 0) & (y < h.unsqueeze(1) - 1) & (x > 0) & (x < w.unsqueeze(1) - 1)
            if keep is not None:
                use &= keep(sel, di, dj)
            k, t = use.nonzero(as_tuple=True)
            start = offsets[o] + ((b[sel] * l3 + layer[sel]) * h + row[sel]) * w + col[sel]
            # index_select: 2-3x faster than x[i] for these large 1-D gathers on the CPU
            di_t, dj_t = di.index_select(0, t), dj.index_select(0, t)
            p = start.index_select(0, k) + di_t * w.index_select(0, k) + dj_t
            yield (sel.index_select(0, k), di_t, dj_t, pyr.magnitude.index_select(0, p),
                   pyr.direction.index_select(0, p))


def _max3(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Max of each element and its two neighbours along dim (the ends are dropped)."""
    n = x.shape[dim]
    return torch.maximum(torch.maximum(x.narrow(dim, 0, n - 2), x.narrow(dim, 1, n - 2)),
                         x.narrow(dim, 2, n - 2))


def _min3(x: torch.Tensor, dim: int) -> torch.Tensor:
    n = x.shape[dim]
    return torch.minimum(torch.minimum(x.narrow(dim, 0, n - 2), x.narrow(dim, 1, n - 2)),
                         x.narrow(dim, 2, n - 2))
