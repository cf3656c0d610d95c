"""One accepted candidate -> the members of its WebDataset sample and its index row
(format: :mod:`mimic_fast.dataset.schema`)."""

from __future__ import annotations

import json

import numpy as np

from mimic_fast.dataset import schema
from mimic_fast.io.sources import Source
from mimic_fast.mining.config import MineConfig
from mimic_fast.mining.evaluate import Candidate


def sample_key(source: Source, i: int, j: int) -> str:
    return schema.sample_key(source.id, i, j)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def sample_record(source: Source, c: Candidate, cfg: MineConfig) -> dict:
    v1, v2 = c.v1, c.v2
    return {
        "key": sample_key(source, v1.index, v2.index),
        "source": source.path,
        "kind": source.kind,
        "frames": [v1.index, v2.index],
        "times": [v1.time, v2.time] if v1.time is not None else None,
        "paths": [v1.path, v2.path] if v1.path is not None else None,
        "original_size": [list(v1.original_hw), list(v2.original_hw)],
        "image_size": [cfg.size, cfg.size],
        "patch_size": cfg.patch_size,
        "resize": cfg.resize,
        "H": [[float(x) for x in row] for row in c.H],
        "overlap": c.overlap,
        "counts": list(c.counts),
        "correspondences": c.correspondences.tolist(),
        "inliers": c.inliers,
        "matches": c.matches,
        "keypoints": [len(v1.features), len(v2.features)],
    }


def encode_sample(source: Source, c: Candidate, cfg: MineConfig) -> tuple[str, dict, dict]:
    """(key, tar members {ext: bytes}, the sample's json) of an accepted candidate."""
    rec = sample_record(source, c, cfg)
    members = dict(zip(schema.MEMBER_EXTS, (
        encode_jpeg(c.v1.rgb, cfg.jpeg_quality),
        encode_jpeg(c.v2.rgb, cfg.jpeg_quality),
        json.dumps(rec, separators=(",", ":")).encode(),
    )))
    return rec["key"], members, rec
