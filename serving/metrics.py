"""The scorer's Prometheus metrics, in a registry owned by one app instance.

Request-path metrics (counts, latency, candidates, degraded answers) are updated by the
handlers. The state of the snapshot cache and the impression logger is read at scrape
time by a collector, so those components need not know about Prometheus. A registry
per app (not the process-wide default) lets several apps live in one test process.

Examples
--------
>>> m = ScorerMetrics()
>>> m.requests.labels(endpoint="/rank", status="200").inc()
>>> m.candidates.observe(20)
>>> text = m.render().decode()
>>> 'streamrank_http_requests_total{endpoint="/rank",status="200"} 1.0' in text
True
>>> "streamrank_model_loaded 0.0" in text
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from serving.impressions import ImpressionLogger
    from serving.snapshots import SnapshotCache

__all__ = ["CONTENT_TYPE", "ScorerMetrics"]

#: The Content-Type of :meth:`ScorerMetrics.render`.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_CANDIDATE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


class ScorerMetrics:
    """Every metric of one scorer app; :meth:`bind` adds its components' state.

    Parameters
    ----------
    registry
        Where the metrics live; a new one by default.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter("streamrank_http_requests", "HTTP requests by endpoint and status.",
                                ["endpoint", "status"], registry=r)
        self.rank_latency = Histogram("streamrank_rank_latency_seconds",
                                      "Time to answer one POST /rank (decode to encode).",
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.candidates = Histogram("streamrank_rank_candidates",
                                    "Candidates per POST /rank.",
                                    buckets=_CANDIDATE_BUCKETS, registry=r)
        self.degraded = Counter("streamrank_rank_degraded",
                                "Answers in upstream order, by reason "
                                "(no_model, redis_down, error).", ["reason"], registry=r)
        for reason in ("no_model", "redis_down", "error"):
            self.degraded.labels(reason=reason)  # exported as 0 before the first one
        self.rank_errors = Counter("streamrank_rank_errors",
                                   "Unexpected exceptions while ranking (answered degraded).",
                                   registry=r)
        self._state = _StateCollector()
        r.register(self._state)

    def bind(self, cache: SnapshotCache | None = None,
             impressions: ImpressionLogger | None = None) -> None:
        """Report the state of these components at each scrape."""
        self._state.cache = cache
        self._state.impressions = impressions

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """Reads counters and gauges off the snapshot cache and the impression logger."""

    def __init__(self) -> None:
        self.cache: SnapshotCache | None = None
        self.impressions: ImpressionLogger | None = None

    def collect(self) -> Iterator[Metric]:
        imp = self.impressions
        for name, doc, value in (
            ("logged", "Impressions the broker acknowledged.", imp.logged if imp else 0),
            ("dropped", "Impressions dropped because the buffer was full (queued + unacked).",
             imp.dropped if imp else 0),
            ("failed", "Impressions that failed to send.", imp.failed if imp else 0),
        ):
            yield CounterMetricFamily(f"streamrank_impressions_{name}", doc, value=value)
        yield GaugeMetricFamily("streamrank_impressions_queued",
                                "Impressions waiting in the buffer for Kafka.",
                                value=imp.queued if imp else 0)
        yield GaugeMetricFamily("streamrank_impressions_unacked",
                                "Impressions sent to Kafka, waiting for the broker's ack "
                                "(they count against the buffer too).",
                                value=imp.unacked if imp else 0)
        yield GaugeMetricFamily("streamrank_impressions_buffer_size",
                                "Most impressions held at once (queued + unacked), "
                                "STREAMRANK_IMPRESSION_BUFFER.",
                                value=imp.buffer_size if imp else 0)
        cache = self.cache
        model = cache.model if cache else None
        snap = model.snapshot if model else None
        yield GaugeMetricFamily("streamrank_model_loaded", "1 when a model is loaded.",
                                value=1 if snap else 0)
        yield GaugeMetricFamily("streamrank_model_version",
                                "Version of the loaded model (0: none; versions start at 1).",
                                value=snap.version if snap else 0)
        age = time.time() - snap.created_ms / 1000.0 if snap else math.nan
        yield GaugeMetricFamily("streamrank_model_age_seconds",
                                "Seconds since the loaded snapshot was created (NaN: none).",
                                value=age)
        yield GaugeMetricFamily("streamrank_redis_up",
                                "1 when the last contact with Redis succeeded.",
                                value=1 if cache and cache.redis_ok else 0)
        yield CounterMetricFamily("streamrank_snapshot_loads", "Snapshots loaded.",
                                  value=cache.loads if cache else 0)
        yield CounterMetricFamily("streamrank_snapshot_errors",
                                  "Failed snapshot polls and snapshots that would not decode.",
                                  value=cache.errors if cache else 0)
