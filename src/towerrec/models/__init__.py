"""Models: the base class and ready-made models."""

from towerrec.models.base import Batch, Model

__all__ = ["Batch", "Model"]
