"""towerrec.data: MovieLens loading, tables from CSV/Parquet/pandas, splits, synthetic data."""

from towerrec.data.frames import CANONICAL_COLUMNS, interactions, read_table
from towerrec.data.movielens import (
    REMOTES,
    VARIANTS,
    MovieLens,
    MovieLensNotFoundError,
    download_movielens,
    movielens,
)
from towerrec.data.splits import bernoulli_split, leave_last_out, random_split, time_split
from towerrec.data.synthetic import synthetic_interactions, synthetic_movielens, write_movielens

__all__ = [
    "CANONICAL_COLUMNS",
    "REMOTES",
    "VARIANTS",
    "MovieLens",
    "MovieLensNotFoundError",
    "bernoulli_split",
    "download_movielens",
    "interactions",
    "leave_last_out",
    "movielens",
    "random_split",
    "read_table",
    "synthetic_interactions",
    "synthetic_movielens",
    "time_split",
    "write_movielens",
]
