"""Write about every 0.25 s frame of some videos as PNGs, one folder per video (the
cross-view experiment in RESULTS.md mines them as groups: walking the shared videos frame by
frame gives only 10 pairs, their consecutive samples overlap too much).

    python benchmarks/video_frames.py OUT VIDEO...
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2


def main(out: str, videos: list[str], seconds: float = 0.25) -> None:
    for video in videos:
        cap = cv2.VideoCapture(video)
        step = max(1, round(cap.get(cv2.CAP_PROP_FPS) * seconds))
        folder = Path(out) / Path(video).stem
        folder.mkdir(parents=True, exist_ok=True)
        i = written = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % step == 0:
                cv2.imwrite(str(folder / f"{i:05d}.png"), frame)
                written += 1
            i += 1
        print(f"{video}: {written} frames")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
