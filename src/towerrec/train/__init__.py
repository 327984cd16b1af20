"""Training: the Trainer, its History and callbacks."""

from towerrec.train.callbacks import (
    Callback,
    Checkpoint,
    EarlyStopping,
    PerHeadEarlyStopping,
    load_checkpoint,
    save_checkpoint,
)
from towerrec.train.history import History
from towerrec.train.trainer import Dataset, Trainer, dataset_length, iterate_batches

__all__ = [
    "Callback",
    "Checkpoint",
    "Dataset",
    "EarlyStopping",
    "History",
    "PerHeadEarlyStopping",
    "Trainer",
    "dataset_length",
    "iterate_batches",
    "load_checkpoint",
    "save_checkpoint",
]
