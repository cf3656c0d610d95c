"""Reading mined pair datasets for training: shard index or stream, CPU or DALI decoding."""

from mimic_fast.data.config import DataConfig
from mimic_fast.data.index import CsvIndex, DataError, ShardIndex, open_index, split
from mimic_fast.data.loader import EpochSampler, PairDataset, StreamingPairs
from mimic_fast.data.pipeline import BatchSource, choose_decoder, train_batches
from mimic_fast.data.transforms import PairTransform, denormalize, normalize

__all__ = [
    "BatchSource", "CsvIndex", "DataConfig", "DataError", "EpochSampler", "PairDataset",
    "PairTransform", "ShardIndex", "StreamingPairs", "choose_decoder", "denormalize",
    "normalize", "open_index", "split", "train_batches",
]
