"""An A/B test on simulated traffic: upstream order against a scorer, per-arm CTR and NDCG.

:func:`run_traffic` serves a share of a :class:`~ops.simulator.traffic.Simulator`'s
requests in the upstream order (the simulator logs that impression itself) and the rest
through an injected ``rank_fn`` (the real scorer, which logs its own impression);
interactions go out through the producer, and :class:`TrafficStats` keeps CTR and
NDCG@10 per arm. No network code lives here: the demo passes an HTTP client as
``rank_fn`` and an :class:`~streams.producer.EventProducer` as the producer.

Examples
--------
An A/B run against a perfect ranker (a real scorer would also log its impression), with
a producer that only records:

>>> sim = Simulator(seed=0)
>>> _ = sim.next_request()
>>> class Recorder:
...     def __init__(self): self.events = []
...     def impression(self, event): self.events.append(event)
...     def interaction(self, event): self.events.append(event)
>>> def perfect(body):
...     user = sim.population.user_index(body["user_id"])
...     ids = [it["item_id"] for it in body["items"]]
...     rel = sim.population.true_relevance(user, [sim.item_index(i) for i in ids])
...     return [ids[j] for j in np.argsort(-rel)], sim.new_impression_id()
>>> stats = run_traffic(sim, perfect, Recorder(), n_requests=2000)
>>> print(stats.summary())
requests 2000 | upstream CTR 0.740 NDCG@10 0.538 | reranked CTR 1.384 NDCG@10 1.000
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from ops.simulator.traffic import Simulator

__all__ = ["ARMS", "ArmStats", "EventSink", "RankFn", "TrafficStats", "run_traffic"]

#: ``rank_fn(body) -> (served item ids best first, impression_id)``: how the scorer is called.
RankFn = Callable[[dict[str, Any]], tuple[Sequence[str], str]]
#: The two arms of :func:`run_traffic`.
ARMS = ("upstream", "reranked")


class EventSink(Protocol):
    """Where events go: the part of :class:`~streams.producer.EventProducer` used here."""

    def impression(self, event: Mapping[str, Any]) -> None:
        """Record a served list."""

    def interaction(self, event: Mapping[str, Any]) -> None:
        """Record a click, add-to-cart or purchase."""


class ArmStats:
    """Running totals of one arm, overall and over its last ``window`` impressions."""

    def __init__(self, window: int = 500) -> None:
        self.window = window
        self.impressions = 0
        self.clicks = 0
        self.add_to_carts = 0
        self.purchases = 0
        self.revenue = 0.0
        self.ndcg_sum = 0.0
        self._recent: deque[tuple[int, float]] = deque(maxlen=window)  # (clicks, ndcg)

    def record(self, events: Sequence[Mapping[str, Any]], ndcg: float) -> None:
        """Count one served list with the interactions it got and its NDCG."""
        clicks = sum(e["type"] == "click" for e in events)
        self.impressions += 1
        self.clicks += clicks
        self.add_to_carts += sum(e["type"] == "add_to_cart" for e in events)
        self.purchases += sum(e["type"] == "purchase" for e in events)
        self.revenue += sum(float(e.get("value") or 0.0) for e in events
                            if e["type"] == "purchase")
        self.ndcg_sum += ndcg
        self._recent.append((clicks, ndcg))

    @property
    def ctr(self) -> float:
        """Clicks per impression (0.0 before the first)."""
        return self.clicks / self.impressions if self.impressions else 0.0

    @property
    def mean_ndcg(self) -> float:
        """Mean NDCG@10 over all impressions."""
        return self.ndcg_sum / self.impressions if self.impressions else 0.0

    @property
    def recent_ctr(self) -> float:
        """Clicks per impression over the last ``window`` impressions."""
        return sum(c for c, _ in self._recent) / len(self._recent) if self._recent else 0.0

    @property
    def recent_ndcg(self) -> float:
        """Mean NDCG@10 over the last ``window`` impressions."""
        return sum(n for _, n in self._recent) / len(self._recent) if self._recent else 0.0

    def as_dict(self) -> dict[str, float | int]:
        """The figures as a JSON-ready dict."""
        return {"impressions": self.impressions, "clicks": self.clicks,
                "add_to_carts": self.add_to_carts, "purchases": self.purchases,
                "revenue": round(self.revenue, 2), "ctr": self.ctr,
                "ndcg_at_10": self.mean_ndcg, "recent_ctr": self.recent_ctr,
                "recent_ndcg_at_10": self.recent_ndcg}


class TrafficStats:
    """Per-arm figures of an A/B run (see :func:`run_traffic`)."""

    def __init__(self, window: int = 500) -> None:
        self.window = window
        self.requests = 0
        self.arms = {arm: ArmStats(window) for arm in ARMS}

    @property
    def upstream(self) -> ArmStats:
        """The arm served in the upstream order."""
        return self.arms["upstream"]

    @property
    def reranked(self) -> ArmStats:
        """The arm served by ``rank_fn``."""
        return self.arms["reranked"]

    def record(self, arm: str, events: Sequence[Mapping[str, Any]], ndcg: float) -> None:
        """Count one request of ``arm``."""
        self.requests += 1
        self.arms[arm].record(events, ndcg)

    def summary(self, recent: bool = False) -> str:
        """One line for a console: CTR and NDCG@10 per arm, overall or recent."""
        parts = [f"requests {self.requests}"]
        for arm, s in self.arms.items():
            ctr, ndcg = (s.recent_ctr, s.recent_ndcg) if recent else (s.ctr, s.mean_ndcg)
            parts.append(f"{arm} CTR {ctr:.3f} NDCG@10 {ndcg:.3f}")
        return " | ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (for ``--json``)."""
        return {"requests": self.requests,
                **{arm: s.as_dict() for arm, s in self.arms.items()}}


def run_traffic(sim: Simulator, rank_fn: RankFn, producer: EventSink, n_requests: int,
                on_progress: Callable[[TrafficStats], None] | None = None, *,
                upstream_share: float = 0.5, seed: int = 0, progress_every: int = 100,
                window: int = 500,
                should_stop: Callable[[], bool] | None = None) -> TrafficStats:
    """Send ``n_requests`` simulated searches through an A/B split, with their clicks.

    Parameters
    ----------
    sim
        The traffic source and ground truth.
    rank_fn
        ``rank_fn(body) -> (served item ids, impression_id)`` for the reranked arm; it
        logs its own impression (the scorer does).
    producer
        Gets the upstream arm's impressions and every arm's interactions.
    n_requests
        How many requests to simulate.
    on_progress
        Called with the stats every ``progress_every`` requests and after the last.
    upstream_share
        Share of requests served in the upstream order (the control arm).
    seed
        Seed of the arm assignment.
    window
        Impressions per arm in the recent figures.
    should_stop
        Checked before each request; ``True`` ends the run early (a deadline, Ctrl-C).
    """
    if not 0.0 <= upstream_share <= 1.0:
        raise ValueError(f"upstream_share must be in [0, 1], got {upstream_share}")
    arm_rng = np.random.default_rng(seed)
    stats = TrafficStats(window)
    for n in range(1, n_requests + 1):
        if should_stop is not None and should_stop():
            if on_progress is not None:
                on_progress(stats)
            break
        request = sim.next_request()
        arm = ARMS[0] if arm_rng.random() < upstream_share else ARMS[1]
        if arm == "upstream":
            served: Sequence[str] = request.item_ids
            impression_id = sim.new_impression_id()
            producer.impression(sim.impression_event(request, served, impression_id,
                                                     context={"arm": arm}))
        else:
            body = {**request.body, "context": {**request.body["context"], "arm": arm}}
            served, impression_id = rank_fn(body)
        events = sim.respond(request, served, impression_id)
        for event in events:
            producer.interaction(event)
        stats.record(arm, events, sim.ndcg_at_k(request, served))
        if on_progress is not None and (n % progress_every == 0 or n == n_requests):
            on_progress(stats)
    return stats
