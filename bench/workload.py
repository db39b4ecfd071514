"""One example stream for every benchmark, drawn from the traffic simulator.

Simulated shoppers (``ops.simulator.Simulator``) search; each list is served in the
upstream order and the click model answers it. From that traffic come:

* :attr:`Workload.lists`: labelled lists exactly as the worker's join makes them (one per
  click, add-to-cart or purchase: the interacted item labelled 1, the other shown items 0,
  weighted by interaction type), each with the features computed when its list was shown
  (with the user's and the session's state and the catalog): every learner's input;
* :func:`rank_cases`: ranking requests of ``n`` candidates for the scoring benchmarks;
* :attr:`Workload.pipeline`: the same traffic replayed through the worker's logic
  (``streams.pipeline.Pipeline``), so its catalog and its users' and sessions' states
  are what the scorer reads for a request;
* :func:`traffic_events`: the same traffic as contract events, serialised once, for the
  broker benchmarks (impressions and interactions, keyed by ``user_id``).

Examples
--------
>>> w = make_workload(200, seed=1, n_users=50, n_items=120)
>>> len(w.lists) > 100, len(w.lists[0].item_ids), sum(w.lists[0].labels)
(True, 20, 1.0)
>>> ctx, ids, scores = rank_cases(w, n_candidates=25, count=3, seed=0)[0]
>>> len(ids), len(set(ids)), scores[0] > scores[-1]
(25, 25, True)
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from learner.features import RankContext
from ops.simulator import Simulator
from streams.examples import LabeledList
from streams.pipeline import Pipeline
from streams.schemas import ImpressionEvent, InteractionEvent, ItemEvent

__all__ = ["FEATURE_BITS", "Workload", "context_of", "make_workload", "rank_cases",
           "traffic_events"]

#: The shop every benchmark simulates: users, catalog size, candidates per search.
N_USERS = 5_000
N_ITEMS = 1_000
K = 20
#: Hash bits of the features the lists carry (the deployment's default; a learner with
#: other bits must recompute them: ``dataclasses.replace(ex, features=None)``).
FEATURE_BITS = 20


@dataclass
class Workload:
    """Simulated traffic turned into learner input and ranking requests."""

    sim: Simulator
    #: Labelled lists in traffic order.
    lists: list[LabeledList]
    #: The request context (user, session, query) of every simulated search.
    contexts: list[RankContext]
    #: The traffic replayed through the worker's logic: its ``items`` (the catalog),
    #: ``users`` and ``sessions`` (their states after the last search).
    pipeline: Pipeline

    @property
    def rows(self) -> int:
        """Candidate rows (one per shown item) over all lists: the learners' examples."""
        return sum(len(ex.item_ids) for ex in self.lists)


def context_of(ex: LabeledList) -> RankContext:
    """The request context a labelled list was served for."""
    return RankContext(user_id=ex.user_id, session_id=ex.session_id, query=ex.query)


def make_workload(n_requests: int, seed: int = 0, n_users: int = N_USERS,
                  n_items: int = N_ITEMS, k: int = K) -> Workload:
    """Simulate ``n_requests`` searches served in the upstream order, and their outcomes."""
    sim = Simulator(n_users=n_users, n_items=n_items, seed=seed, k=k, run_id=f"b{seed}")
    pipeline = Pipeline.in_memory(bits=FEATURE_BITS)
    for item in sim.catalog_events():
        pipeline.on_item(ItemEvent.model_validate(item), ts=0)
    lists: list[LabeledList] = []
    contexts: list[RankContext] = []
    for _ in range(n_requests):
        req = sim.next_request()
        contexts.append(RankContext(user_id=req.user_id, session_id=req.session_id,
                                    query=req.query.text))
        imp = sim.new_impression_id()
        shown = sim.impression_event(req, req.item_ids, imp)
        fx = pipeline.on_impression(ImpressionEvent.model_validate(shown), ts=req.ts,
                                    source=f"bench/0/{req.ts}")
        lists.extend(ex for ex in fx.examples if ex.kind == "labeled")
        for n, event in enumerate(sim.respond(req, req.item_ids, imp)):
            fx = pipeline.on_interaction(InteractionEvent.model_validate(event), ts=event["ts"],
                                         source=f"bench/1/{imp}/{n}")
            lists.extend(ex for ex in fx.examples if ex.kind == "labeled")
    return Workload(sim=sim, lists=lists, contexts=contexts, pipeline=pipeline)


def rank_cases(w: Workload, n_candidates: int, count: int,
               seed: int = 0) -> list[tuple[RankContext, list[str], list[float]]]:
    """``count`` ranking requests of ``n_candidates`` distinct catalog items each.

    Contexts come from the simulated searches; candidates are drawn from the whole catalog
    (at most its size) with descending upstream scores, as a search engine sends them.
    """
    rng = np.random.default_rng(seed)
    ids = w.sim.catalog.item_ids
    n = min(n_candidates, len(ids))
    cases = []
    for _ in range(count):
        ctx = w.contexts[int(rng.integers(len(w.contexts)))]
        pick = rng.choice(len(ids), size=n, replace=False)
        scores = np.sort(rng.normal(10.0, 2.0, size=n))[::-1].round(3)
        cases.append((ctx, [ids[i] for i in pick], scores.tolist()))
    return cases


def traffic_events(sim: Simulator, n_requests: int,
                   clock: bool = True) -> list[tuple[bool, bytes, bytes]]:
    """Contract events of ``n_requests`` searches: ``(is_impression, key, JSON value)``.

    Each search gives its impression (served in the upstream order) and then its clicks,
    add-to-carts and purchases, in that order. ``clock`` stamps events with the current
    time (the worker sees them as live traffic) instead of the simulated time.
    """
    out: list[tuple[bool, bytes, bytes]] = []
    for _ in range(n_requests):
        req = sim.next_request()
        imp_id = sim.new_impression_id()
        imp = sim.impression_event(req, req.item_ids, imp_id)
        now = int(time.time() * 1000)
        if clock:
            imp["ts"] = now
        key = req.user_id.encode()
        out.append((True, key, orjson.dumps(imp)))
        for event in sim.respond(req, req.item_ids, imp_id):
            if clock:
                event["ts"] = now
            out.append((False, key, orjson.dumps(event)))
    return out
