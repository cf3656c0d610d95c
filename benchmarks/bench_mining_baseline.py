"""The published MIMIC mining method, per candidate pair, restated from the paper (Section 3,
Appendix 8) and its released scripts: both frames decoded again for every pair (a video frame by
a seek to 1000 t + 1 ms and a read) and resized to 224x224 (cv2.resize default), grayscale SIFT recomputed for every pair (a new cv2.SIFT per pair),
brute-force kNN k=2 with the 0.7 ratio test, RANSAC homography (5 px) when more than 10
matches, then patch correspondences with a Python loop: for every patch, 100 random pixels,
each projected with its own cv2.perspectiveTransform call, majority vote ("out" included),
first-come de-duplication, both directions; overlap = the smaller direction's count / 196;
and the video script's walk over the samples (:func:`published_walk`).

Only the benchmarks use this: the "before" of bench_mining.py and the reference of
bench_fidelity.py. The published overlap step draws from Python's global, unseeded ``random``;
here a ``random.Random`` can be passed, so its randomness can be repeated per seed.
"""

from __future__ import annotations

import random
import time

import cv2
import numpy as np

SIZE, PATCH = 224, 16
NCOLS = SIZE // PATCH
P = NCOLS * NCOLS
SAMPLES = 100


def read_frame(where) -> np.ndarray:
    """where: an image path, or (video path, seconds) read after seeking, as published."""
    if isinstance(where, tuple):
        cap = cv2.VideoCapture(str(where[0]))
        cap.set(cv2.CAP_PROP_POS_MSEC, 1000 * where[1] + 1)
        ok, bgr = cap.read()
        cap.release()
    else:
        bgr = cv2.imread(str(where))
    return cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (SIZE, SIZE))


def sift_homography(img1, img2):
    g1 = cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY)
    g2 = cv2.cvtColor(img2, cv2.COLOR_RGB2GRAY)
    sift = cv2.SIFT_create()
    kp1, d1 = sift.detectAndCompute(g1, None)
    kp2, d2 = sift.detectAndCompute(g2, None)
    t_sift = time.perf_counter()
    if d1 is None or d2 is None:
        return None, t_sift, t_sift
    good = []
    for pair in cv2.BFMatcher().knnMatch(d1, d2, k=2):
        if len(pair) == 2 and pair[0].distance < 0.7 * pair[1].distance:
            good.append(pair[0])
    t_match = time.perf_counter()
    if len(good) <= 10:
        return None, t_sift, t_match
    src = np.float32([kp1[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([kp2[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    H, _ = cv2.findHomography(src, dst, cv2.RANSAC, 5.0)
    return H, t_sift, t_match


def _vote(patch, H, rng):
    x0, y0 = (patch % NCOLS) * PATCH, (patch // NCOLS) * PATCH
    labels = []
    for r in rng.choices(range(PATCH * PATCH), k=SAMPLES):
        pt = np.float32([[x0 + r % PATCH, y0 + r // PATCH]]).reshape(-1, 1, 2)
        x, y = cv2.perspectiveTransform(pt, H)[0, 0]
        if x < 0 or y < 0 or x >= SIZE or y >= SIZE:
            labels.append("out")
        else:
            labels.append(int(y) // PATCH * NCOLS + int(x) // PATCH)
    counts, best = {}, ("", 0)
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
        if counts[label] > best[1]:
            best = (label, counts[label])
    return best[0]


def _direction(H, rng):
    matched = {}
    for patch in range(P):
        target = _vote(patch, H, rng)
        if target != "out" and target not in list(matched.values()):
            matched[patch] = target
    return matched


def overlap(H, rng=random) -> float:
    fwd, bwd = _direction(H, rng), _direction(np.linalg.inv(H), rng)
    return min(len(fwd), len(bwd)) / P


def published_kept(ov) -> bool:
    """The published keep rule: a homography was found and 0.5 < overlap < 0.75."""
    return ov is not None and 0.5 < ov < 0.75


def published_walk(n: int, overlap_of) -> list[tuple[int, int]]:
    """The candidates (i, j) the published video script forms over n samples, in order.
    overlap_of(i, j): the pair's overlap, None without a homography. (i, i+1) is kept when
    0.5 < overlap < 0.75; above 0.75, (i, i+2) is tried, and when kept the walk skips i+1."""
    kept = published_kept
    formed, i = [], 0
    while i < n - 1:
        formed.append((i, i + 1))
        ov = overlap_of(i, i + 1)
        if not kept(ov) and ov is not None and ov > 0.75 and i + 2 < n:
            formed.append((i, i + 2))
            if kept(overlap_of(i, i + 2)):
                i += 1
        i += 1
    return formed


def candidate(where1, where2) -> dict:
    """Run one candidate pair; returns per-stage seconds and the overlap (None: no H)."""
    t0 = time.perf_counter()
    img1, img2 = read_frame(where1), read_frame(where2)
    t1 = time.perf_counter()
    H, t_sift, t_match = sift_homography(img1, img2)
    t2 = time.perf_counter()
    ov = overlap(H) if H is not None else None
    t3 = time.perf_counter()
    return {"decode": t1 - t0, "sift": t_sift - t1, "match": t_match - t_sift,
            "ransac": t2 - t_match, "overlap": t3 - t2, "total": t3 - t0, "value": ov}
