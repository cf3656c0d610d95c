"""GPU decoding with NVIDIA DALI (nvJPEG, ``device="mixed"``): the optional fast path.

Used only when ``nvidia.dali`` is importable and training runs on CUDA (``decode="auto"``),
or when asked for (``decode="dali"``, which raises :class:`DaliUnavailable` if it cannot
run). NOT RUN YET: DALI is installed neither on the CPU machines nor on the GPU machine this
project has borrowed; the code follows the DALI 1.x API (``fn.readers.webdataset``,
``fn.decoders.image``, ``DALIGenericIterator``) and must be checked on a machine with DALI.

Differences from the CPU path (documented, by design):
* the order comes from DALI's reader (shards split over ranks by DALI, shuffle buffer of
  ``shuffle_buffer`` samples seeded by (seed, rank, resume position)); a resumed run does
  not replay the same order, so resume is exact only on the CPU path;
* unreadable samples are skipped by the reader (``missing_component_behavior="skip"``) and
  are not counted, and pairs are not checked against the sha256 their index records (run
  ``mimic-fast verify`` on the dataset first, or train with ``--decode cpu``);
* the patch masks are drawn on the GPU by the trainer's generator, not per pair.
"""

from __future__ import annotations

import logging

import torch

from mimic_fast.dataset.schema import VIEW_EXTS

log = logging.getLogger(__name__)


class DaliUnavailable(RuntimeError):
    """DALI was asked for but cannot run here."""


def dali_available() -> tuple[bool, str]:
    """(usable, why not) for the current process."""
    if not torch.cuda.is_available():
        return False, "no CUDA device"
    try:
        import nvidia.dali  # noqa: F401
    except ImportError:
        return False, ("nvidia.dali is not installed (pip install nvidia-dali-cuda120 from "
                       "https://pypi.nvidia.com)")
    return True, ""


class DaliPairs:
    """Endless iterator of batch dicts already on the GPU: ``target`` (and for CroCo
    ``reference``) uint8 [B, 3, S, S], and ``skipped`` [B] (zeros, on the CPU). No ``mask``:
    the trainer draws masks on the GPU."""

    def __init__(self, shards: list[str], batch_size: int, img_size: int, two_views: bool,
                 rank: int, world: int, device_id: int, seed: int, augment: bool,
                 crop_min_scale: float, color_jitter, shuffle_buffer: int, num_threads: int = 4):
        ok, why = dali_available()
        if not ok:
            raise DaliUnavailable(f"decode='dali' cannot run: {why}")
        from nvidia.dali import fn, pipeline_def, types
        from nvidia.dali.plugin.base_iterator import LastBatchPolicy
        from nvidia.dali.plugin.pytorch import DALIGenericIterator

        b, c, s, h = color_jitter

        def view(jpeg):
            img = fn.decoders.image(jpeg, device="mixed", output_type=types.RGB)
            if augment:
                img = fn.random_resized_crop(img, size=[img_size, img_size],
                                             random_area=[crop_min_scale, 1.0],
                                             random_aspect_ratio=[3 / 4, 4 / 3])
                img = fn.color_twist(
                    img,
                    brightness=fn.random.uniform(range=[max(0.0, 1 - b), 1 + b]),
                    contrast=fn.random.uniform(range=[max(0.0, 1 - c), 1 + c]),
                    saturation=fn.random.uniform(range=[max(0.0, 1 - s), 1 + s]),
                    hue=fn.random.uniform(range=[-h * 360, h * 360]))
            else:
                img = fn.resize(img, size=[img_size, img_size])
            return fn.transpose(img, perm=[2, 0, 1])  # HWC -> CHW, uint8

        @pipeline_def(batch_size=batch_size, num_threads=num_threads, device_id=device_id,
                      seed=seed, prefetch_queue_depth=2, enable_conditionals=True)
        def pipe():
            jpg0, jpg1 = fn.readers.webdataset(
                paths=shards, ext=[";".join(VIEW_EXTS[0]), ";".join(VIEW_EXTS[1])],
                missing_component_behavior="skip", random_shuffle=True,
                initial_fill=shuffle_buffer, shard_id=rank, num_shards=world, name="reader")
            # Which view is masked: chosen per pair on the encoded bytes (a CPU predicate),
            # so MAE decodes only the one it uses.
            if fn.random.coin_flip(probability=0.5):
                target, reference = jpg1, jpg0
            else:
                target, reference = jpg0, jpg1
            if two_views:
                return view(target), view(reference)
            return (view(target),)

        self.names = ["target", "reference"] if two_views else ["target"]
        self.pipe = pipe()
        self.pipe.build()
        self.it = DALIGenericIterator(self.pipe, self.names, reader_name="reader",
                                      last_batch_policy=LastBatchPolicy.DROP, auto_reset=True)
        self.batch_size = batch_size
        log.info("DALI GPU decoding (nvJPEG, device='mixed') on cuda:%d, %d shard(s)", device_id, len(shards))

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        try:
            out = next(self.it)[0]
        except StopIteration:  # epoch end: auto_reset rewinds; ranks never wait on each other
            out = next(self.it)[0]
        batch = {name: out[name] for name in self.names}
        batch["skipped"] = torch.zeros(self.batch_size, dtype=torch.long)  # CPU, not counted
        return batch
