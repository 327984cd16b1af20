"""Stateful metrics and ranking functions."""

from towerrec.metrics.base import Metric
from towerrec.metrics.ranking import BatchTopK, mrr, ndcg_at_k, recall_at_k
from towerrec.metrics.regression import AUC, MAE, MSE, RMSE, BinaryAccuracy, Mean
from towerrec.metrics.topk import FactorizedTopK, SeenItems, corpus_ranks

__all__ = [
    "AUC",
    "MAE",
    "MSE",
    "RMSE",
    "BatchTopK",
    "BinaryAccuracy",
    "FactorizedTopK",
    "Mean",
    "Metric",
    "SeenItems",
    "corpus_ranks",
    "mrr",
    "ndcg_at_k",
    "recall_at_k",
]
