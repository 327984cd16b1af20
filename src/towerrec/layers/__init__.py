"""Building blocks for towers: embeddings (plain and memory-efficient), text, dense stacks."""

from towerrec.layers.embedding import Embedding
from towerrec.layers.features import FeatureConcat, Numeric
from towerrec.layers.memory import (
    HashEmbedding,
    MixedDimEmbedding,
    QREmbedding,
    alpha_power_dims,
    frequency_blocks,
)
from towerrec.layers.mlp import MLP, make_activation
from towerrec.layers.text import TextEmbedding

__all__ = [
    "MLP",
    "Embedding",
    "FeatureConcat",
    "HashEmbedding",
    "MixedDimEmbedding",
    "Numeric",
    "QREmbedding",
    "TextEmbedding",
    "alpha_power_dims",
    "frequency_blocks",
    "make_activation",
]
