"""Datasets by URI: readers (LightGCN directories, CSV/TSV/Parquet tables), id maps and per-user splits.

Torch-free: numpy / scipy / pandas / fsspec only.
"""

from c2f.trainer.data.dataset import InteractionData, load_dataset
from c2f.trainer.data.readers import DatasetError

__all__ = ["DatasetError", "InteractionData", "load_dataset"]
