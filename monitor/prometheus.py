"""The monitor's figures on ``/metrics``: what the learner's worker wrote to Redis.

The worker has no HTTP server; it writes each point to Redis (:mod:`monitor.series`),
and the scorer (and ``streamrank dashboard``) export the newest one here, read from a
:class:`~monitor.dashboard.MonitorFeed` in memory. Every family is always exported
(NaN while there is no point), so dashboards and alert rules find every name.
``docs/operations.md`` lists the names; ``ops/grafana/streamrank.json`` charts them.

Examples
--------
>>> from prometheus_client import CollectorRegistry, generate_latest
>>> class Feed:
...     point = {"ts_ms": 0, "mrr_learner": 0.5, "ctr_reranked": 1.1, "psi": {"item_ctr": 0.02},
...              "consumer_lag": {"t.examples": 3.0}, "detections_adwin": 2}
...     alarm, alarms_total, pinned, current, ok = None, 0, None, 7, True
>>> r = CollectorRegistry()
>>> r.register(MonitorCollector(Feed()))
>>> text = generate_latest(r).decode()
>>> 'streamrank_quality_mrr{ranker="learner"} 0.5' in text
True
>>> 'streamrank_drift_feature_psi{feature="item_ctr"} 0.02' in text
True
>>> 'streamrank_drift_detections_total{detector="adwin"} 2.0' in text
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.quality import ARMS, RANKERS
from monitor.series import COUNTERS, DETECTORS

__all__ = ["METRIC_NAMES", "MonitorCollector"]


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


#: (name, help, point key) of the unlabelled gauges.
_GAUGES = (
    ("streamrank_quality_window_lists", "Labelled lists in the quality window.", "lists"),
    ("streamrank_quality_predicted_top_ctr",
     "Mean predicted probability of the learner's top item being chosen (calibration).",
     "pred_top"),
    ("streamrank_quality_observed_top_ctr",
     "Share of lists whose chosen item was the learner's top item (calibration).", "obs_top"),
    ("streamrank_quality_ece", "Expected calibration error of the learner (10 bins).", "ece"),
    ("streamrank_drift_loss_mean", "Mean log-loss in ADWIN's window (since the last change).",
     "loss_adwin_mean"),
    ("streamrank_drift_feature_psi_max", "Largest PSI of any numeric feature.", "psi_max"),
    ("streamrank_drift_score_psi", "PSI of the learner's scores against the reference.",
     "psi_score"),
    ("streamrank_model_weight_norm", "L2 norm of the sparse weights of the newest snapshot.",
     "weight_norm"),
    ("streamrank_model_dense_norm", "L2 norm of the embedding tables of the newest snapshot.",
     "dense_norm"),
    ("streamrank_model_update_size",
     "Relative size of the last update, ||w_t - w_(t-1)|| / ||w_(t-1)||.", "update_size"),
    ("streamrank_learner_version", "The learner's newest published version.",
     "learner_version"),
    ("streamrank_learner_snapshot_age_seconds",
     "Seconds since the learner's newest snapshot was created.", "snapshot_age_s"),
    ("streamrank_served_snapshot_age_seconds",
     "Seconds since the served (current) snapshot was created.", "served_age_s"),
    ("streamrank_learner_freshness_lag_seconds",
     "Seconds from the event time of the newest list learned to the point.", "freshness_lag_s"),
    ("streamrank_learner_examples", "Labelled lists the learner has applied.", "examples"),
)

#: Every metric name this collector exports.
METRIC_NAMES = (
    [g[0] for g in _GAUGES]
    + ["streamrank_quality_ctr", "streamrank_quality_mrr", "streamrank_quality_ndcg",
       "streamrank_quality_auc", "streamrank_quality_logloss", "streamrank_drift_detections",
       "streamrank_drift_feature_psi", "streamrank_consumer_lag",
       "streamrank_events_per_second", "streamrank_serving_pinned",
       "streamrank_serving_current_version", "streamrank_alarm_active", "streamrank_alarms",
       "streamrank_monitor_up", "streamrank_monitor_point_age_seconds"])


class _NoFeed:
    """What is exported before the feed exists (the app is starting)."""

    point: dict[str, Any] | None = None
    alarm: dict[str, Any] | None = None
    alarms_total = 0
    pinned: int | None = None
    current: int | None = None
    ok = False


class MonitorCollector(Collector):
    """Exports the feed's newest point, alarm and pin at each scrape."""

    def __init__(self, feed: Any) -> None:
        #: A :class:`~monitor.dashboard.MonitorFeed`, or a callable giving one (or None).
        self.feed = feed

    def collect(self) -> Iterator[Metric]:
        feed = self.feed() if callable(self.feed) else self.feed
        if feed is None:
            feed = _NoFeed()
        p: dict[str, Any] = feed.point or {}
        for name, doc, key in _GAUGES:
            yield GaugeMetricFamily(name, doc, value=_num(p.get(key)))
        ctr = GaugeMetricFamily("streamrank_quality_ctr",
                                "Clicks per served list over the window, by arm.",
                                labels=["arm"])
        for arm in ARMS:
            ctr.add_metric([arm], _num(p.get(f"ctr_{arm}")))
        yield ctr
        for fig, doc in (("mrr", "Mean reciprocal rank of the chosen item"),
                         ("ndcg", "NDCG of the chosen item"),
                         ("auc", "Share of the list ranked below the chosen item"),
                         ("logloss", "Log-loss of the choice (upstream: uniform)")):
            g = GaugeMetricFamily(f"streamrank_quality_{fig}",
                                  f"{doc}, progressive validation over the window, by ranker "
                                  "(learner, served, upstream).", labels=["ranker"])
            for ranker in RANKERS:
                g.add_metric([ranker], _num(p.get(f"{fig}_{ranker}")))
            yield g
        det = CounterMetricFamily("streamrank_drift_detections",
                                  "Drift detections on the loss stream, by detector.",
                                  labels=["detector"])
        for d in DETECTORS:
            det.add_metric([d], _num(p.get(f"detections_{d}", 0)))
        yield det
        psi = GaugeMetricFamily("streamrank_drift_feature_psi",
                                "PSI of each numeric feature against its reference window.",
                                labels=["feature"])
        for feature, value in sorted((p.get("psi") or {}).items()):
            psi.add_metric([feature], _num(value))
        yield psi
        lag = GaugeMetricFamily("streamrank_consumer_lag",
                                "Records not yet processed by the worker, by topic.",
                                labels=["topic"])
        for topic, value in sorted((p.get("consumer_lag") or {}).items()):
            lag.add_metric([topic], _num(value))
        yield lag
        rate = GaugeMetricFamily("streamrank_events_per_second",
                                 "Events processed per second by all workers, by kind "
                                 "(impressions, interactions, items, dead_letters).",
                                 labels=["kind"])
        for kind in COUNTERS:
            rate.add_metric([kind], _num(p.get(f"rate_{kind}")))
        yield rate
        yield GaugeMetricFamily("streamrank_serving_pinned",
                                "1 while serving is pinned to a version.",
                                value=1 if feed.pinned is not None else 0)
        yield GaugeMetricFamily("streamrank_serving_current_version",
                                "The version the current pointer names (0: none).",
                                value=feed.current or 0)
        yield GaugeMetricFamily("streamrank_alarm_active", "1 while a drift alarm is active.",
                                value=1 if feed.alarm is not None else 0)
        yield CounterMetricFamily("streamrank_alarms", "Drift alarms fired (kept history).",
                                  value=feed.alarms_total)
        yield GaugeMetricFamily("streamrank_monitor_up",
                                "1 when the last read of the monitor's data in Redis worked.",
                                value=1 if feed.ok else 0)
        ts = p.get("ts_ms")
        yield GaugeMetricFamily("streamrank_monitor_point_age_seconds",
                                "Seconds since the newest monitor point (NaN: none).",
                                value=time.time() - ts / 1000 if ts else math.nan)
