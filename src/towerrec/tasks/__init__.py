"""Tasks: losses that own their metrics."""

from towerrec.tasks.base import Task
from towerrec.tasks.ranking import Ranking
from towerrec.tasks.retrieval import (
    MIN_LOGIT,
    Retrieval,
    hard_negative_mining,
    remove_accidental_hits,
    retrieval_scores,
)

__all__ = [
    "MIN_LOGIT",
    "Ranking",
    "Retrieval",
    "Task",
    "hard_negative_mining",
    "remove_accidental_hits",
    "retrieval_scores",
]
