"""DALI's GPU graphs (nvJPEG on "mixed", NVDEC for H.264, the training reader on CUDA) against the
OpenCV path. Never run yet: they need DALI and a CUDA device (``pytest -m cuda`` on a GPU
machine); the bounds are loose on purpose and each test prints what it measured."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nvidia.dali", reason="NVIDIA DALI is not installed (the 'dali' extra)")

from mimic_fast.io.dali_decode import dali_missing  # noqa: E402

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(dali_missing(need_gpu=True) is not None,
                       reason=f"DALI's GPU backend cannot run: {dali_missing(need_gpu=True)}"),
]


def _stats(a: np.ndarray, b: np.ndarray) -> tuple[float, int]:
    assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return float(d.mean()), int(d.max())


def test_nvjpeg_decodes_what_opencv_decodes(shared_data, tmp_path):
    import cv2

    from mimic_fast.io.dali_decode import DaliImageDecoder, DecodedImage
    from mimic_fast.io.images import read_image

    paths = sorted((shared_data / "pairs" / "lightglue").glob("*.JPG"))
    for k, p in enumerate(sorted((shared_data / "video" / "tum_freiburg_frames").glob("*.png"))[:3]):
        paths.append(tmp_path / f"{k}.jpg")
        cv2.imwrite(str(paths[-1]), cv2.imread(str(p)), [cv2.IMWRITE_JPEG_QUALITY, 90])
    results = DaliImageDecoder("gpu", batch_size=4).decode(paths)
    for path, res in zip(paths, results):
        assert isinstance(res, DecodedImage), (path, res)
        mean, worst = _stats(res.rgb, read_image(path, exact=True)[0])
        print(f"nvJPEG vs OpenCV {path.name}: mean {mean:.3f}, max {worst}")
        assert mean < 2.0, (path, mean, worst)


def test_nvdec_samples_are_sample_videos(shared_data):
    """box.mp4: H.264 with B-frames (decode order differs from presentation order)."""
    from mimic_fast.io.dali_decode import dali_sample_video
    from mimic_fast.io.video import sample_video

    path = shared_data / "video" / "opencv_box" / "box.mp4"
    stats_cv, stats_gpu = {}, {}
    ours = list(sample_video(path, 1.0, stats_cv))
    gpu = list(dali_sample_video(path, 1.0, stats_gpu, "gpu"))
    assert [(f.index, f.time) for f in gpu] == [(f.index, f.time) for f in ours]
    assert stats_gpu == stats_cv
    for a, b in zip(gpu, ours):
        mean, worst = _stats(a.rgb, b.rgb)
        print(f"NVDEC vs OpenCV frame {a.index}: mean {mean:.3f}, max {worst}")
        assert mean < 3.0, (a.index, mean, worst)


def test_training_reader_on_cuda_gives_the_cpu_readers_pairs(mined_tum):
    import torch

    from mimic_fast.data.dali import DaliPairs
    from mimic_fast.data.index import open_index
    from mimic_fast.data.loader import EpochSampler, PairDataset
    from mimic_fast.data.transforms import PairTransform

    index, b = open_index(mined_tum), 4
    pairs = DaliPairs(index, b, 224, True, seed=3, device="gpu", device_id=0)
    ds = PairDataset(index, PairTransform(224, two_views=True), 3)
    order = iter(EpochSampler(len(index), b, 0, 1, 3))
    for _ in range(2):
        batch = next(pairs)
        assert batch["target"].is_cuda and batch["target"].dtype == torch.uint8
        items = [ds[next(order)] for _ in range(b)]
        assert batch["index"].tolist() == [it["index"] for it in items]
        assert batch["target_view"].tolist() == [it["target_view"] for it in items]
        for name in ("target", "reference"):
            ref = np.stack([it[name].numpy() for it in items])
            mean, worst = _stats(batch[name].cpu().numpy(), ref)
            print(f"DaliPairs gpu vs CPU reader {name}: mean {mean:.3f}, max {worst}")
            assert mean < 2.0
