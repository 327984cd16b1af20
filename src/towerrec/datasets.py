"""Ready-made datasets: `towerrec.datasets.movielens("100k")`."""

from towerrec.data.movielens import MovieLens, movielens

__all__ = ["MovieLens", "movielens"]
