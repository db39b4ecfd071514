"""Offline evaluation: replay an event log, score every list before learning from it."""

from ops.evaluation.metrics import ListMetrics, MetricTotals, list_metrics, true_ndcg
from ops.evaluation.rankers import (
    MODELS,
    PopularityRanker,
    Ranker,
    TrainerRanker,
    UpstreamRanker,
    make_ranker,
)
from ops.evaluation.replay import Replay

__all__ = [
    "MODELS",
    "ListMetrics",
    "MetricTotals",
    "PopularityRanker",
    "Ranker",
    "Replay",
    "TrainerRanker",
    "UpstreamRanker",
    "list_metrics",
    "make_ranker",
    "true_ndcg",
]
