"""Fitted feature transforms: raw columns -> tensors, saved as JSON.

Raw ids never enter a tower: a `Transform` is fitted on data (`Lookup` vocabularies,
`Discretize` boundaries, `Normalize` statistics, `TextVectorizer` token vocabularies) or needs
no fitting (`Hashing`, `Passthrough`), and a `FeatureSpace` holds a named set of them, fits
them on frames, transforms frames into dicts of tensors and saves them as one JSON document so
serving maps raw values exactly as training did.
"""

from __future__ import annotations

from towerrec.features.base import Transform
from towerrec.features.discretize import Discretize
from towerrec.features.hashing import Hashing, Passthrough
from towerrec.features.lookup import Lookup
from towerrec.features.normalize import Normalize
from towerrec.features.space import FeatureSpace
from towerrec.features.text import TextVectorizer

__all__ = [
    "Discretize",
    "FeatureSpace",
    "Hashing",
    "Lookup",
    "Normalize",
    "Passthrough",
    "TextVectorizer",
    "Transform",
]
