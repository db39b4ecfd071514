"""Simulated search traffic: requests in, contract events out, scored against the truth.
(:mod:`ops.simulator.ab` runs it as an A/B test against a scorer.)

:class:`Simulator` ties the catalog, the users, the query model and the click model
together. :meth:`Simulator.next_request` draws who searches for what (a session is a short
burst of requests by one user, often in the same category) with the upstream candidate
list as a ``POST /rank`` body; :meth:`Simulator.respond` turns the order actually served
into contract InteractionEvents; :meth:`Simulator.ndcg_at_k` and
:meth:`Simulator.oracle_order` measure an order against the hidden true relevance.
Requests and clicks draw from separate random streams spawned from one seed (the A/B
split from a seed of its own), so two rankers run with the same seeds see the very same
requests.

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

"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ops.simulator.catalog import Catalog, make_catalog
from ops.simulator.clicks import ClickModel
from ops.simulator.queries import Query, QueryModel
from ops.simulator.users import Population, SessionIntent, TasteParams, make_users

__all__ = ["Request", "Simulator", "dcg_at_k"]

FloatArray = npt.NDArray[np.float64]

#: Event time of the first simulated request: 2025-12-01T00:00:00Z.
START_MS = 1_764_547_200_000


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
