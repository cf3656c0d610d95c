"""A generated camera path over a real photo (e.g. scikit-image's astronaut), for the demo,
the benchmark's default input and tests. Every frame is a homography warp of the photo, so the
true homography between any two frames is known.

The camera glides over the photo (which is mirrored beyond its borders, consistently with the
plane) with a slow rotation and zoom; steps vary so that some consecutive frames overlap too
much (exercising the (i, i+2) rule) and others fall in the keep band.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def photo(name: str = "astronaut") -> np.ndarray:
    """RGB uint8 photo shipped with scikit-image (astronaut, coffee, chelsea, rocket, ...)."""
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def camera_path(
    image: np.ndarray, n_frames: int = 24, frame_hw: tuple[int, int] = (360, 480),
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(frames [h, w, 3] uint8, A [3, 3] per frame mapping photo pixels to frame pixels)."""
    import cv2

    rng = np.random.default_rng(seed)
    ph, pw = image.shape[:2]
    fh, fw = frame_hw
    win = 0.45 * min(ph, pw)  # photo pixels seen across the frame width at zoom 1
    steps = rng.choice([0.08, 0.25, 0.3], size=n_frames) * win  # glide per frame
    angle = rng.uniform(0, 2 * np.pi)
    cx, cy = pw / 2, ph / 2
    frames, mats = [], []
    for k in range(n_frames):
        angle += rng.normal(0, 0.4)
        dx, dy = steps[k] * np.cos(angle), steps[k] * np.sin(angle)
        if not 0.1 * pw < cx + dx < 0.9 * pw:  # bounce off the photo's edges
            dx, angle = -dx, np.pi - angle
        if not 0.1 * ph < cy + dy < 0.9 * ph:
            dy, angle = -dy, -angle
        cx, cy = cx + dx, cy + dy
        theta = np.deg2rad(6 * np.sin(0.4 * k))
        zoom = (fw / win) * (1 + 0.08 * np.sin(0.3 * k + 1))
        A = _translate(fw / 2, fh / 2) @ _rotate(theta) @ np.diag([zoom, zoom, 1]) \
            @ _translate(-cx, -cy)
        A[2] += [1e-5 * np.sin(k), 1e-5 * np.cos(k), 0]  # a little perspective
        frames.append(cv2.warpPerspective(image, A, (fw, fh), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT_101))
        mats.append(A)
    return frames, mats


def true_homography(A1: np.ndarray, A2: np.ndarray, frame_hw: tuple[int, int],
                    size: int = 224) -> np.ndarray:
    """H between the squashed size x size views of frames 1 and 2 (view-1 pixel -> view 2)."""
    from mimic_fast.geometry.homography import rescale_homography

    return rescale_homography(A2 @ np.linalg.inv(A1), frame_hw, frame_hw, (size, size),
                              (size, size))


def write_frames(frames: list[np.ndarray], folder: str | Path, quality: int = 95) -> list[Path]:
    """frame-000000.jpg, ... (JPEG) into folder."""
    import cv2

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, f in enumerate(frames):
        p = folder / f"frame-{k:06d}.jpg"
        cv2.imwrite(str(p), cv2.cvtColor(f, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        paths.append(p)
    return paths


def write_video(frames: list[np.ndarray], path: str | Path, fps: float = 2.0) -> Path:
    """An MPEG-4 (mp4v) file of the frames; fps = 1 / the interval to sample it at."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path} (no mp4v encoder?)")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1, 0, x], [0, 1, y], [0, 0, 1.0]])


def _rotate(t: float) -> np.ndarray:
    c, s = np.cos(t), np.sin(t)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])
