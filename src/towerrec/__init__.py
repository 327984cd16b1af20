"""towerrec: PyTorch-native two-tower retrieval and ranking models, evaluation and serving."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
