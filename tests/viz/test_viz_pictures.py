"""Correspondence pictures: readable size, labelled views, a legend, neighbouring patches in
distinct colours, matched patches alike in both views, unmatched ones grey."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.color import rgb2lab

from mimic_fast.dataset.reader import iter_samples
from mimic_fast.viz.correspondences import (
    ALPHA, MIN_VIEW_PX, NO_MATCH_GREY, draw_correspondences, patch_colours,
)


def _delta_e(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference of sRGB uint8 colours [..., 3] (skimage's Lab)."""
    return np.linalg.norm(rgb2lab(a / 255.0) - rgb2lab(b / 255.0), axis=-1)


def _dark(img: np.ndarray, box) -> int:
    """Dark (text) pixels in a box of an RGB image."""
    x0, y0, x1, y1 = box
    return int((img[y0:y1, x0:x1].max(axis=2) < 100).sum())


def test_figure_of_a_mined_pair_is_readable_labelled_and_has_a_legend(mined_tum):
    s = next(iter(iter_samples(mined_tum)))
    fig = draw_correspondences(s.view1, s.view2, s.meta["correspondences"], title="a pair",
                               lines=6)
    img = fig.image
    (a, b) = fig.views
    for x0, y0, x1, y1 in fig.views:  # each view at least 448 px each way, inside the image
        assert x1 - x0 >= MIN_VIEW_PX and y1 - y0 >= MIN_VIEW_PX
        assert 0 <= x0 and 0 <= y0 and x1 <= img.shape[1] and y1 <= img.shape[0]
    assert a[2] <= b[0]  # side by side, not overlapping
    assert fig.scale == 2 and fig.lines == 6
    for label, view in zip(fig.labels, fig.views):  # a label right above each view
        assert label[3] == view[1] and label[0] == view[0]
        assert _dark(img, label) > 50, "the view has no label text"
    lx0, ly0, lx1, ly1 = fig.legend
    assert ly0 >= max(a[3], b[3]) and ly1 <= img.shape[0]  # under the views
    legend = img[ly0:ly1, lx0:lx1].reshape(-1, 3)
    assert _dark(img, fig.legend) > 200, "the legend has no text"
    # its swatches: the no-match grey and the colour map
    assert (legend == np.array(NO_MATCH_GREY, np.uint8)).all(axis=1).sum() >= 100
    palette = {tuple(c) for c in patch_colours(12, 12)}
    assert len({tuple(p) for p in legend} & palette) >= 100


def test_neighbouring_patches_have_distinct_colours_and_none_is_grey():
    grid = patch_colours(14, 14).reshape(14, 14, 3).astype(float)
    horizontal = _delta_e(grid[:, 1:], grid[:, :-1])
    vertical = _delta_e(grid[1:], grid[:-1])
    assert horizontal.min() >= 15 and vertical.min() >= 15, (horizontal.min(), vertical.min())
    grey = np.broadcast_to(np.array(NO_MATCH_GREY, float), grid.shape)
    assert _delta_e(grid, grey).min() >= 20  # a match never looks like "no match"


def _patch_centres(img: np.ndarray, box, step: int, n: int) -> np.ndarray:
    x0, y0 = box[0], box[1]
    idx = np.arange(n) * step + step // 2
    return img[y0 + idx][:, x0 + idx].astype(float)  # [n, n, 3]


def test_drawn_tints_are_distinct_between_neighbours_and_equal_across_views():
    """On flat grey views, the drawn colour of a patch is its tint alone: view-1 patch p is
    matched to view-2 patch p + 1 (one column to the right), the last column unmatched."""
    view = np.full((224, 224, 3), 128, np.uint8)
    n = 14
    pairs = [(r * n + c, r * n + c + 1) for r in range(n) for c in range(n - 1)]
    fig = draw_correspondences(view, view, np.array(pairs))
    step = 16 * fig.scale
    v1 = _patch_centres(fig.image, fig.views[0], step, n)
    v2 = _patch_centres(fig.image, fig.views[1], step, n)
    matched = v1[:, :-1]
    assert _delta_e(matched[:, 1:], matched[:, :-1]).min() >= 8
    assert _delta_e(matched[1:], matched[:-1]).min() >= 8
    assert np.abs(v2[:, 1:] - matched).max() <= 2  # the same colour in both views
    expected = (1 - ALPHA) * 128 + ALPHA * patch_colours(n, n).reshape(n, n, 3)[:, :-1]
    assert np.abs(matched - expected).max() <= 2
    for unmatched in (v1[:, -1], v2[:, 0]):  # grey: no colour at all
        assert np.ptp(unmatched, axis=-1).max() <= 1


def test_bad_correspondences_are_refused_with_their_reason():
    view = np.zeros((224, 224, 3), np.uint8)
    with pytest.raises(ValueError, match="view-2 patch outside its 14x14 patches"):
        draw_correspondences(view, view, np.array([[0, 196]]))
    with pytest.raises(ValueError, match=r"shape \[P1\] or \[K, 2\]"):
        draw_correspondences(view, view, np.zeros((2, 3)))
