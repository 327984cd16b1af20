"""Building blocks for towers: embeddings, dense stacks, interactions."""

from towerrec.layers.embedding import Embedding
from towerrec.layers.mlp import MLP, make_activation

__all__ = ["MLP", "Embedding", "make_activation"]
