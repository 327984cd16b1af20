"""Top-k indexes: exact brute force and FAISS approximate search behind one interface.

`index(embeddings, ids)` stores a corpus, `query(queries, k, exclude=None) -> (scores, ids)`
searches it, `save(folder)` writes it and `towerrec.index.load(folder)` reads any saved index.
"""

from towerrec.index.base import Index, load
from towerrec.index.brute_force import BruteForce
from towerrec.index.faiss import Faiss

__all__ = ["BruteForce", "Faiss", "Index", "load"]
