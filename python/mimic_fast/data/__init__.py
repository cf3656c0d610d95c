"""Reading mined pair datasets for training: shard index or stream, CPU or DALI decoding.

The names below load on first use (PEP 562): importing ``mimic_fast.data.config`` (what the
CLI needs to show the defaults) must not import torch.
"""

import importlib

_HOMES = {
    "DataConfig": "config",
    "CsvIndex": "index", "DataError": "index", "ShardIndex": "index", "open_index": "index",
    "split": "index",
    "EpochSampler": "loader", "PairDataset": "loader", "StreamingPairs": "loader",
    "BatchSource": "pipeline", "choose_decoder": "pipeline", "train_batches": "pipeline",
    "PairTransform": "transforms", "denormalize": "transforms", "normalize": "transforms",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    globals()[name] = value
    return value
