"""Pictures of patch correspondences (the MIMIC paper's Figure 8): both views side by side,
labelled, at a readable size, each matched patch pair tinted alike, patches without a match
grey, a legend under the views, and optionally lines joining a sample of matches.

Colours: a matched pair takes the colour of its view-1 patch's position on a 2-D colour map
(hue across the columns, lightness down the rows), so the same region of view 2 shows the
same gradient as the region of view 1 it matches; a checkerboard step in lightness keeps
every two neighbouring patches apart (random colours gave near-duplicates side by side).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MIN_VIEW_PX = 448  # each view is drawn at least this wide and high (224 px views: 2x)
ALPHA = 0.55  # weight of the tint over the picture
NO_MATCH_GREY = (128, 128, 128)
_BACKGROUND = (255, 255, 255)
_TEXT = (20, 20, 20)
_MARGIN, _GAP = 10, 16


Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), x1 and y1 exclusive


@dataclass(frozen=True)
class CorrespondenceFigure:
    """The picture and where its parts are (for callers that crop or check it)."""

    image: np.ndarray  # [H, W, 3] uint8 RGB
    views: tuple[Box, Box]  # the two drawn views
    labels: tuple[Box, Box]  # their labels, above them
    legend: Box  # the legend band, below them
    scale: int  # drawn pixels per stored pixel
    lines: int  # matches joined by a line


def patch_colours(rows: int, cols: int) -> np.ndarray:
    """[rows * cols, 3] uint8 sRGB colour of each patch (index = row * cols + col): CIELAB
    hue angle from the column, lightness from the row, +-10 lightness by checkerboard."""
    r, c = np.mgrid[0:rows, 0:cols].astype(np.float64)
    angle = 0.3 + 2 * np.pi * 0.85 * c / max(cols - 1, 1)  # 85% of the circle: no wrap-around
    lightness = 42 + 36 * r / max(rows - 1, 1) + np.where((r + c) % 2 == 1, 10.0, -10.0)
    lab = np.stack([lightness, 50 * np.cos(angle), 50 * np.sin(angle)], axis=-1)
    return np.round(_lab_to_srgb(lab) * 255).astype(np.uint8).reshape(-1, 3)


def draw_correspondences(
    view1: np.ndarray,
    view2: np.ndarray,
    correspondences: np.ndarray,
    patch_size: int = 16,
    title: str | None = None,
    labels: tuple[str, str] = ("view 1 (0.jpg)", "view 2 (1.jpg)"),
    lines: int = 0,
    min_view_px: int = MIN_VIEW_PX,
) -> CorrespondenceFigure:
    """The figure of one pair.

    view1, view2: HxW or HxWx3 uint8 images. correspondences: [P1] view-2 patch per view-1
    patch (-1: none), or [K, 2] pairs of (view-1 patch, view-2 patch). Each view is scaled
    by a whole factor to at least ``min_view_px`` on its shorter side. ``lines``: join this
    many matches (evenly spread over the view-1 patches) by a line.
    """
    from PIL import Image, ImageDraw

    v1, v2 = _rgb(view1), _rgb(view2)
    pairs = _as_pairs(np.asarray(correspondences))
    grid1 = (v1.shape[0] // patch_size, v1.shape[1] // patch_size)
    grid2 = (v2.shape[0] // patch_size, v2.shape[1] // patch_size)
    colours = patch_colours(*grid1).astype(np.float32)
    for k, (grid, name) in enumerate(((grid1, "view-1"), (grid2, "view-2"))):
        if len(pairs) and not (0 <= pairs[:, k].min() and pairs[:, k].max() < grid[0] * grid[1]):
            raise ValueError(f"a correspondence names a {name} patch outside its "
                             f"{grid[0]}x{grid[1]} patches")
    tint1 = np.full((grid1[0] * grid1[1], 3), np.nan, np.float32)
    tint2 = np.full((grid2[0] * grid2[1], 3), np.nan, np.float32)
    tint1[pairs[:, 0]] = colours[pairs[:, 0]]
    tint2[pairs[:, 1]] = colours[pairs[:, 0]]
    scale = max(1, -(-min_view_px // min(v1.shape[0], v1.shape[1], v2.shape[0], v2.shape[1])))
    out1 = _tinted(v1, tint1, grid1, patch_size, scale)
    out2 = _tinted(v2, tint2, grid2, patch_size, scale)

    font, small = _font(18), _font(15)
    title_h = 30 if title else 0
    label_h = 26
    x1 = _MARGIN
    x2 = x1 + out1.shape[1] + _GAP
    width = x2 + out2.shape[1] + _MARGIN
    views_y = _MARGIN + title_h + label_h
    views_h = max(out1.shape[0], out2.shape[0])
    legend_y = views_y + views_h + 8
    legend_h = 64
    canvas = Image.new("RGB", (width, legend_y + legend_h + _MARGIN), _BACKGROUND)
    canvas.paste(Image.fromarray(out1), (x1, views_y))
    canvas.paste(Image.fromarray(out2), (x2, views_y))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((_MARGIN, _MARGIN), _fit(title, font, width - 2 * _MARGIN), font=font,
                  fill=_TEXT)
    label_boxes = []
    for x, w, text in ((x1, out1.shape[1], labels[0]), (x2, out2.shape[1], labels[1])):
        y = views_y - label_h
        draw.text((x, y + 2), _fit(text, small, w), font=small, fill=_TEXT)
        label_boxes.append((x, y, x + w, views_y))
    view_boxes = ((x1, views_y, x1 + out1.shape[1], views_y + out1.shape[0]),
                  (x2, views_y, x2 + out2.shape[1], views_y + out2.shape[0]))
    drawn = _draw_lines(draw, pairs, lines, grid1, grid2, patch_size * scale, view_boxes,
                        colours)
    legend = (_MARGIN, legend_y, width - _MARGIN, legend_y + legend_h)
    _draw_legend(canvas, draw, legend, small, len(pairs), drawn)
    return CorrespondenceFigure(np.asarray(canvas), view_boxes, tuple(label_boxes), legend,
                                scale, drawn)


def save_png(image: np.ndarray | CorrespondenceFigure, path: str | Path) -> Path:
    """Write an RGB uint8 image (or a figure's) as PNG, creating the folder."""
    from PIL import Image

    if isinstance(image, CorrespondenceFigure):
        image = image.image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def pair_title(meta: dict) -> str:
    """A pair's one-line title: source, frames, overlap, patch pairs."""
    frames = meta.get("frames") or ["?", "?"]
    return (f"{Path(str(meta.get('source', '?'))).name}  frames {frames[0]}-{frames[1]}:  "
            f"overlap {_overlap(meta)},  {len(meta.get('correspondences') or [])} "
            "patch pairs")


def view_labels(meta: dict) -> tuple[str, str]:
    frames = meta.get("frames") or ["?", "?"]
    return (f"view 1 (0.jpg): frame {frames[0]}", f"view 2 (1.jpg): frame {frames[1]}")


def _overlap(meta: dict) -> str:
    v = meta.get("overlap")
    return f"{v:.3f}" if isinstance(v, float) else str(v)


# --- drawing -----------------------------------------------------------------------------------
def _tinted(view: np.ndarray, tint: np.ndarray, grid: tuple[int, int], patch: int,
            scale: int) -> np.ndarray:
    """The view scaled up, in grey levels, each patch blended with its colour (grey where
    NaN: no match), with a faint line between patches."""
    import cv2

    rows, cols = grid
    img = view.astype(np.float32)
    covered = img[: rows * patch, : cols * patch]
    # on the grey level of the picture, so a patch shows its tint, not the scene's colours
    covered[:] = (covered @ np.float32([0.299, 0.587, 0.114]))[..., None]
    colour = np.where(np.isnan(tint), np.float32(NO_MATCH_GREY), tint).reshape(rows, cols, 3)
    colour = np.repeat(np.repeat(colour, patch, axis=0), patch, axis=1)
    covered[:] = (1 - ALPHA) * covered + ALPHA * colour
    big = cv2.resize(np.clip(img, 0, 255).astype(np.uint8),
                     (view.shape[1] * scale, view.shape[0] * scale),
                     interpolation=cv2.INTER_LINEAR if scale > 1 else cv2.INTER_NEAREST)
    step = patch * scale
    for k in range(1, rows):
        big[k * step] = (big[k * step] * 0.6).astype(np.uint8)
    for k in range(1, cols):
        big[:, k * step] = (big[:, k * step] * 0.6).astype(np.uint8)
    return big


def _draw_lines(draw, pairs: np.ndarray, n: int, grid1, grid2, step: int, views, colours) -> int:
    if n <= 0 or len(pairs) == 0:
        return 0
    pick = pairs[np.unique(np.linspace(0, len(pairs) - 1, min(n, len(pairs))).round().astype(int))]
    for a, b in pick:
        (ra, ca), (rb, cb) = divmod(int(a), grid1[1]), divmod(int(b), grid2[1])
        p = (views[0][0] + ca * step + step // 2, views[0][1] + ra * step + step // 2)
        q = (views[1][0] + cb * step + step // 2, views[1][1] + rb * step + step // 2)
        colour = tuple(int(v) for v in colours[a])
        draw.line([p, q], fill=(0, 0, 0), width=5)  # a dark edge: visible on any picture
        draw.line([p, q], fill=colour, width=3)
        for x, y in (p, q):
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour, outline=(0, 0, 0))
    return len(pick)


def _draw_legend(canvas, draw, box: Box, font, n_matches: int, n_lines: int) -> None:
    from PIL import Image

    x0, y0, x1, y1 = box
    sw = 48  # the colour map as a 12x12 swatch grid (4 px a patch)
    swatch = patch_colours(12, 12).reshape(12, 12, 3)
    swatch = np.repeat(np.repeat(swatch, 4, axis=0), 4, axis=1)
    canvas.paste(Image.fromarray(swatch), (x0, y0 + 4))
    draw.text((x0 + sw + 10, y0 + 2),
              _fit(f"same colour = matched patches ({n_matches}); the colour is the view-1 "
                   "patch's position (hue: column, lightness: row)", font, x1 - x0 - sw - 10),
              font=font, fill=_TEXT)
    draw.rectangle([x0 + sw + 10, y0 + 28, x0 + sw + 30, y0 + 44], fill=NO_MATCH_GREY)
    text = "grey = no match in the other view"
    if n_lines:
        text += f";  lines join {n_lines} of the {n_matches} matches"
    draw.text((x0 + sw + 38, y0 + 27), _fit(text, font, x1 - x0 - sw - 40), font=font,
              fill=_TEXT)


@functools.lru_cache(maxsize=None)
def _font(size: int):
    """DejaVu Sans (shipped with matplotlib, a dependency) at ``size`` px."""
    import matplotlib
    from PIL import ImageFont

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:  # no FreeType in this Pillow: its small bitmap font still labels
        return ImageFont.load_default()


def _fit(text: str, font, width: int) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "...") > width:
        text = text[:-1]
    return text + "..."


# --- inputs and colour -------------------------------------------------------------------------
def _as_pairs(corr: np.ndarray) -> np.ndarray:
    if corr.ndim == 2 and corr.shape[1] == 2:
        return corr.astype(np.int64)
    if corr.ndim == 2 and corr.shape[0] == 0:
        return np.zeros((0, 2), np.int64)
    if corr.ndim == 1:
        src = np.nonzero(corr >= 0)[0]
        return np.stack([src, corr[src]], axis=1).astype(np.int64)
    raise ValueError(f"correspondences must have shape [P1] or [K, 2], got {list(corr.shape)}")


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        return np.repeat(img[..., None], 3, axis=2)
    if img.ndim == 3 and img.shape[2] in (3, 4):
        return img[..., :3]
    raise ValueError(f"views must be HxW or HxWx3 images, got shape {list(img.shape)}")


def _lab_to_srgb(lab: np.ndarray) -> np.ndarray:
    """CIELAB (D65) -> sRGB in [0, 1], clipped to the gamut."""
    L, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    fy = (L + 16) / 116
    f = np.stack([fy + a / 500, fy, fy - b / 200], axis=-1)
    xyz = np.where(f > 6 / 29, f ** 3, 3 * (6 / 29) ** 2 * (f - 4 / 29))
    xyz = xyz * np.array([0.95047, 1.0, 1.08883])
    m = np.array([[3.2404542, -1.5371385, -0.4985314],
                  [-0.9692660, 1.8760108, 0.0415560],
                  [0.0556434, -0.2040259, 1.0572252]])
    rgb = np.clip(xyz @ m.T, 0, 1)
    return np.where(rgb <= 0.0031308, 12.92 * rgb, 1.055 * rgb ** (1 / 2.4) - 0.055)
