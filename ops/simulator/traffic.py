"""Simulated search traffic: requests in, contract events out, scored against the truth.

:class:`Simulator` ties the catalog, the users, the query model and the click model
together. :meth:`Simulator.next_request` draws who searches for what (a session is a short
burst of requests by one user, often in the same category) with the upstream candidate
list as a ``POST /rank`` body; :meth:`Simulator.respond` turns the order actually served
into contract InteractionEvents; :meth:`Simulator.ndcg_at_k` and
:meth:`Simulator.oracle_order` measure an order against the hidden true relevance.
Requests and clicks draw from separate random streams spawned from one seed (the A/B
split from a seed of its own), so two rankers run with the same seeds see the very same
requests.

:func:`run_traffic` drives an A/B test: a share of requests is served in the upstream
order (the simulator logs that impression itself), the rest goes through an injected
``rank_fn`` (the real scorer, which logs its own impression); interactions go out through
the producer, and :class:`TrafficStats` keeps CTR and NDCG@10 per arm. No network code
lives here: the demo passes an HTTP client as ``rank_fn`` and an
:class:`~streams.producer.EventProducer` as the producer.

Examples
--------
>>> sim = Simulator(seed=0)
>>> req = sim.next_request()
>>> req.user_id, req.session_id, req.body["query"], len(req.body["items"])
('u-0115', 's-r0-000001', 'bluetooth headphones', 20)
>>> req.body["items"][0]
{'item_id': 'sku-0275', 'base_score': 14.456, 'features': {'price': 126.99}}
>>> round(sim.ndcg_at_k(req, req.item_ids), 3), sim.ndcg_at_k(req, sim.oracle_order(req))
(0.428, 1.0)

An A/B run against a perfect ranker (a real scorer would also log its impression), with
a producer that only records:

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
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from ops.simulator.catalog import Catalog, make_catalog
from ops.simulator.clicks import ClickModel
from ops.simulator.queries import Query, QueryModel
from ops.simulator.users import Population, SessionIntent, TasteParams, make_users

__all__ = [
    "ARMS",
    "ArmStats",
    "EventSink",
    "RankFn",
    "Request",
    "Simulator",
    "TrafficStats",
    "dcg_at_k",
    "run_traffic",
]

FloatArray = npt.NDArray[np.float64]

#: ``rank_fn(body) -> (served item ids best first, impression_id)``: how the scorer is called.
RankFn = Callable[[dict[str, Any]], tuple[Sequence[str], str]]
#: The two arms of :func:`run_traffic`.
ARMS = ("upstream", "reranked")
#: Event time of the first simulated request: 2025-12-01T00:00:00Z.
START_MS = 1_764_547_200_000


class EventSink(Protocol):
    """Where events go: the part of :class:`~streams.producer.EventProducer` used here."""

    def impression(self, event: Mapping[str, Any]) -> None:
        """Record a served list."""

    def interaction(self, event: Mapping[str, Any]) -> None:
        """Record a click, add-to-cart or purchase."""


@dataclass(frozen=True, eq=False)
class Request:
    """One search request: who, in which session, what, and the upstream candidates."""

    #: 1-based sequence number within the simulator.
    number: int
    #: Index of the user in the population.
    user: int
    user_id: str
    session_id: str
    query: Query
    #: Candidate item ids in the upstream order.
    item_ids: tuple[str, ...]
    #: Event time in epoch milliseconds.
    ts: int
    #: The contract ``POST /rank`` body.
    body: dict[str, Any] = field(repr=False)
    #: The session's intent at this request (``None`` when the simulator has none).
    intent: SessionIntent | None = field(default=None, repr=False)


def dcg_at_k(gains: npt.ArrayLike, k: int) -> float:
    """Discounted cumulative gain of the first ``k`` gains: ``sum g_p / log2(p + 1)``.

    >>> round(dcg_at_k([1.0, 0.5, 0.0], k=10), 4)
    1.3155
    """
    g = np.asarray(gains, dtype=np.float64)[:k]
    return float((g / np.log2(np.arange(2, len(g) + 2))).sum())


@dataclass
class _Session:
    """An open session: its user, id, device, requests left, category and intent."""

    user: int = 0
    session_id: str = ""
    device: str = "mobile"
    left: int = 0
    category: int = 0
    intent: SessionIntent | None = None


class Simulator:
    """Seeded users, catalog and search engine, answering requests with clicks.

    Parameters
    ----------
    n_users, n_items
        Population and catalog size.
    seed
        Everything drawn follows from it.
    k
        Candidates per request.
    n_categories, n_brands
        Taxonomy size (see :func:`~ops.simulator.catalog.make_catalog`).
    concentration
        Dirichlet concentration of users' category weights (small: few categories each).
    taste
        How the parts of a taste add up to relevance (:class:`~ops.simulator.users.TasteParams`).
    upstream_noise
        Noise on the upstream relevance (see :class:`~ops.simulator.queries.QueryModel`).
    session_length
        Mean requests per session (geometric).
    concurrent_sessions
        Sessions open at once; each request continues one of them, drawn at random, so
        one shopper's searches are spread out among other shoppers' (as on a real site,
        where a shopper reads a page before searching again). 1 (the default): one
        session at a time, its requests back to back.
    same_category
        Probability that a request continuing a session stays in its category.
    eta, max_clicks
        Click model (see :class:`~ops.simulator.clicks.ClickModel`).
    intent_scale
        Standard deviation of each session's intent offsets
        (:class:`~ops.simulator.users.SessionIntent`); 0 (the default) means none.
    intent_drift
        Share of the intent's variance redrawn at each request of a session.
    interarrival_ms
        Mean simulated time between requests.
    embedding_dim, embedding_noise
        Each item event carries an ``embedding`` (the contract's precomputed vector, as an
        image or text model would give): a fixed random linear map of the item's hidden
        taste vector to ``embedding_dim`` dimensions, plus Gaussian noise of relative
        standard deviation ``embedding_noise``, so it tells something, not everything,
        about whom the item appeals to. ``embedding_dim=0`` sends none.
    run_id
        Part of session and impression ids; pass a fresh one (``uuid4().hex[:8]``) when
        several runs share one deployment. Defaults to ``r<seed>``.
    clock
        Epoch-milliseconds clock for event times; a simulated clock from
        :data:`START_MS` when not given.
    """

    def __init__(self, n_users: int = 200, n_items: int = 300, seed: int = 0, *,
                 k: int = 20, n_categories: int = 10, n_brands: int = 15,
                 concentration: float = 0.15, taste: TasteParams | None = None,
                 upstream_noise: float = 0.5,
                 session_length: float = 4.0, concurrent_sessions: int = 1,
                 same_category: float = 0.7, eta: float = 1.0,
                 max_clicks: int = 3, interarrival_ms: float = 2000.0,
                 intent_scale: float = 0.0, intent_drift: float = 0.3,
                 embedding_dim: int = 16, embedding_noise: float = 0.5,
                 run_id: str | None = None, clock: Callable[[], int] | None = None) -> None:
        if session_length < 1:
            raise ValueError(f"session_length must be at least 1, got {session_length}")
        if concurrent_sessions < 1:
            raise ValueError(f"concurrent_sessions must be at least 1, got {concurrent_sessions}")
        if intent_scale < 0:
            raise ValueError(f"intent_scale must be at least 0, got {intent_scale}")
        if not 0.0 <= intent_drift <= 1.0:
            raise ValueError(f"intent_drift must be in [0, 1], got {intent_drift}")
        self.intent_scale = intent_scale
        self.intent_drift = intent_drift
        self.seed = seed
        self.run_id = run_id if run_id is not None else f"r{seed}"
        self.session_length = session_length
        self.same_category = same_category
        self.interarrival_ms = interarrival_ms
        self.clock = clock
        # one stream per concern; intents have their own, so turning them on or off
        # leaves the requests and clicks of the other streams as they were
        catalog_ss, users_ss, requests_ss, clicks_ss, intent_ss = \
            np.random.SeedSequence(seed).spawn(5)
        self.catalog: Catalog = make_catalog(n_items, np.random.default_rng(catalog_ss),
                                             n_categories=n_categories, n_brands=n_brands)
        self.population: Population = make_users(n_users, self.catalog,
                                                 np.random.default_rng(users_ss),
                                                 concentration=concentration, params=taste)
        self.query_model = QueryModel(self.catalog, k=k, noise=upstream_noise)
        self.click_model = ClickModel(eta=eta, max_clicks=max_clicks)
        self._rng = np.random.default_rng(requests_ss)
        self._click_rng = np.random.default_rng(clicks_ss)
        self._intent_rng = np.random.default_rng(intent_ss)
        # which open session the next request continues (only drawn when there are several)
        self._session_rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self._item_index = {item_id: i for i, item_id in enumerate(self.catalog.item_ids)}
        self.embeddings = _embeddings(self.population.item_taste, embedding_dim,
                                      embedding_noise, np.random.SeedSequence([seed, 2]))
        self._now_ms = float(START_MS)
        self._requests = 0
        self._sessions = 0
        self._impressions = 0
        # the open sessions: user, id, device, requests left, last category, intent
        self._open = [_Session() for _ in range(concurrent_sessions)]

    def item_index(self, item_id: str) -> int:
        """Catalog index of an item id; ``KeyError`` for an unknown one."""
        return self._item_index[item_id]

    def catalog_events(self) -> list[dict[str, Any]]:
        """The whole catalog as contract ItemEvent dicts (send them before any traffic)."""
        events = list(self.catalog.item_events(ts=self._ts()))
        if self.embeddings is not None:
            for ev, vector in zip(events, self.embeddings.tolist()):
                ev["embedding"] = vector
        return events

    def new_impression_id(self) -> str:
        """A fresh impression id, ``imp-<run_id>-<n>``."""
        self._impressions += 1
        return f"imp-{self.run_id}-{self._impressions:06d}"

    def _ts(self) -> int:
        return self.clock() if self.clock is not None else int(self._now_ms)

    def next_request(self) -> Request:
        """The next search: continue an open session or start one for a user by activity."""
        rng = self._rng
        self._requests += 1
        self._now_ms += rng.exponential(self.interarrival_ms)
        ses = self._open[0] if len(self._open) == 1 else \
            self._open[int(self._session_rng.integers(len(self._open)))]
        stay = rng.random() < self.same_category
        if ses.left <= 0:
            ses.user = int(rng.choice(len(self.population), p=self.population.activity))
            self._sessions += 1
            ses.session_id = f"s-{self.run_id}-{self._sessions:06d}"
            ses.device = "mobile" if rng.random() < 0.6 else "desktop"
            ses.left = int(rng.geometric(1.0 / self.session_length))
            stay = False
            if self.intent_scale > 0:
                ses.intent = SessionIntent.draw(
                    self.catalog.n_brands, self.population.user_taste.shape[1],
                    self.intent_scale, self._intent_rng)
        elif ses.intent is not None:
            ses.intent = ses.intent.drift(self.intent_drift, self.intent_scale,
                                          self._intent_rng)
        ses.left -= 1
        if not stay:
            ses.category = self.query_model.pick_category(
                self.population.category_weight[ses.user], rng)
        query = self.query_model.search(ses.category, rng)
        item_ids = tuple(self.catalog.item_ids[i] for i in query.items)
        prices = self.catalog.price[query.items]
        body: dict[str, Any] = {
            "user_id": self.population.user_ids[ses.user], "session_id": ses.session_id,
            "query": query.text,
            "items": [{"item_id": item_id, "base_score": float(score),
                       "features": {"price": float(price)}}
                      for item_id, score, price in zip(item_ids, query.base_scores, prices)],
            "context": {"device": ses.device}, "explain": False,
        }
        return Request(number=self._requests, user=ses.user, user_id=body["user_id"],
                       session_id=ses.session_id, query=query, item_ids=item_ids,
                       ts=self._ts(), body=body, intent=ses.intent)

    def _indices(self, request: Request, served_item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        candidates = dict(zip(request.item_ids, request.query.items))
        try:
            idx = np.array([candidates[i] for i in served_item_ids], dtype=np.int64)
        except KeyError as exc:
            raise ValueError(f"served item {exc.args[0]!r} is not a candidate of request "
                             f"{request.number}; serve only the ids of its body") from None
        if len(set(served_item_ids)) != len(served_item_ids):
            raise ValueError(f"served list of request {request.number} repeats an item")
        return idx

    def relevance(self, request: Request, served_item_ids: Sequence[str]) -> FloatArray:
        """True relevance of the served items to the requesting user, in served order."""
        return self.population.true_relevance(
            request.user, self._indices(request, served_item_ids), request.intent)

    def respond(self, request: Request, served_item_ids: Sequence[str],
                impression_id: str | None = None) -> list[dict[str, Any]]:
        """The user's clicks, carts and purchases on the served list, as event dicts.

        Events carry ``impression_id`` (pass the one the list was logged with),
        ``session_id`` and event times a few seconds after the request; a purchase has
        ``value`` = the item's price.
        """
        idx = self._indices(request, served_item_ids)
        outcome = self.click_model.simulate(
            self.population.true_relevance(request.user, idx, request.intent), self._click_rng)
        events: list[dict[str, Any]] = []
        base = {"user_id": request.user_id, "session_id": request.session_id}
        if impression_id is not None:
            base["impression_id"] = impression_id
        for n, pos in enumerate(np.flatnonzero(outcome.clicked)):
            item_id, ts = served_item_ids[pos], request.ts + 4000 * (n + 1)
            events.append({"type": "click", "item_id": item_id, "ts": ts, **base})
            if outcome.carted[pos]:
                events.append({"type": "add_to_cart", "item_id": item_id, "ts": ts + 1500,
                               **base})
            if outcome.purchased[pos]:
                events.append({"type": "purchase", "item_id": item_id, "ts": ts + 3000,
                               "value": float(self.catalog.price[idx[pos]]), **base})
        return events

    def impression_event(self, request: Request, served_item_ids: Sequence[str],
                         impression_id: str, model_version: str = "upstream",
                         context: Mapping[str, str | int | float | bool] | None = None,
                         ) -> dict[str, Any]:
        """The contract ImpressionEvent of a served list (what the scorer logs for its own)."""
        self._indices(request, served_item_ids)  # validates the served list
        by_id = {it["item_id"]: it for it in request.body["items"]}
        return {
            "impression_id": impression_id, "user_id": request.user_id,
            "session_id": request.session_id, "query": request.query.text,
            "items": [{"item_id": i, "position": p, "base_score": by_id[i]["base_score"],
                       "features": dict(by_id[i]["features"])}
                      for p, i in enumerate(served_item_ids, start=1)],
            "context": {**request.body["context"], **(context or {})},
            "model_version": model_version, "ts": request.ts,
        }

    def oracle_order(self, request: Request) -> list[str]:
        """The candidates by true relevance to the requesting user, best first."""
        rel = self.relevance(request, request.item_ids)
        return [request.item_ids[j] for j in np.argsort(-rel, kind="stable")]

    def ndcg_at_k(self, request: Request, served_item_ids: Sequence[str], k: int = 10) -> float:
        """NDCG@k of a served order, with true relevance as the gain; 1.0 is the oracle."""
        ideal = dcg_at_k(np.sort(self.relevance(request, request.item_ids))[::-1], k)
        return dcg_at_k(self.relevance(request, served_item_ids), k) / ideal


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


def _embeddings(taste: npt.NDArray[np.float64], dim: int, noise: float,
                seed: np.random.SeedSequence) -> npt.NDArray[np.float64] | None:
    """``(n_items, dim)`` item vectors: a fixed random map of the hidden taste vectors plus
    noise (relative std ``noise``), rounded to 4 decimals; ``None`` for ``dim=0``."""
    if dim <= 0:
        return None
    rng = np.random.default_rng(seed)
    mapped = taste @ rng.normal(size=(taste.shape[1], dim)) / np.sqrt(taste.shape[1])
    mapped += noise * rng.normal(size=mapped.shape)
    return np.round(mapped, 4)
