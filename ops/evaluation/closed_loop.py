"""The closed loop in one process: the simulator's shoppers, the worker's logic and the
learner, without Kafka, Redis or HTTP, for fast model work.

Each simulated search is served either in the upstream order or re-ranked by the current
model (alternating, half and half), the shoppers respond, and every event goes through
the same :class:`~streams.pipeline.Pipeline` and :class:`~learner.trainer.Trainer` as in
the worker; the item counters the features read are refreshed every 250 searches, like
a snapshot. It reports, per window, the true-relevance NDCG@10 of both arms and the
share of the oracle's gain over upstream that re-ranking reaches. The same figure over
the real services is what ``streamrank demo`` prints.

Examples
--------
>>> rows = closed_loop(n_events=600, n_users=20, n_items=60, every=100, dense=False)
>>> rows[-1]["events"] >= 600, 0.0 <= rows[-1]["upstream_ndcg"] <= 1.0
(True, True)
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from learner.features import RankContext
from learner.stats import ItemStats
from learner.trainer import Trainer
from ops.simulator import Simulator
from streams.examples import LabeledList
from streams.pipeline import Pipeline
from streams.schemas import ImpressionEvent, InteractionEvent, ItemEvent

__all__ = ["closed_loop"]


def closed_loop(n_events: int = 50_000, *, seed: int = 0, n_users: int = 200,
                n_items: int = 300, sessions: int = 1, bits: int = 20, every: int = 2000,
                window: int = 1000, click_model: bool = False,
                batch: int = 64, on_row: Callable[[dict[str, Any]], None] | None = None,
                simulator_options: Mapping[str, Any] | None = None,
                **trainer_options: Any) -> list[dict[str, Any]]:
    """Run the loop until ``n_events`` events; return one row of figures per ``every``
    searches (and one at the end). ``sessions`` is the simulator's
    ``concurrent_sessions``; ``click_model`` keeps the users' click models
    (:mod:`learner.click_model`); ``simulator_options`` go to :class:`Simulator`,
    ``trainer_options`` to :class:`Trainer`."""
    sim = Simulator(n_users=n_users, n_items=n_items, seed=seed, concurrent_sessions=sessions,
                    **(simulator_options or {}))
    trainer = Trainer(bits=bits, **trainer_options)
    served_stats: list[ItemStats | None] = [None]
    pipeline = Pipeline.in_memory(bits=bits, stats=lambda: served_stats[0],
                                  click_model=click_model)
    for ev in sim.catalog_events():
        pipeline.on_item(ItemEvent.model_validate(ev), ts=0)
    ndcg: dict[str, list[float]] = {"upstream": [], "reranked": []}
    rows: list[dict[str, Any]] = []
    pending: list[LabeledList] = []
    events = searches = 0

    def row() -> dict[str, Any]:
        up = float(np.mean(ndcg["upstream"][-window:]))
        rr = float(np.mean(ndcg["reranked"][-window:]))
        out = {"events": events, "searches": searches, "upstream_ndcg": up,
               "reranked_ndcg": rr, "oracle_share": (rr - up) / (1 - up) if up < 1 else 0.0}
        if on_row is not None:
            on_row(out)
        return out

    while events < n_events:
        req = sim.next_request()
        searches += 1
        body = req.body
        ids = [it["item_id"] for it in body["items"]]
        arm = "reranked" if searches % 2 else "upstream"
        if arm == "reranked":
            block = pipeline.features(RankContext(body["user_id"], body.get("session_id"),
                                                  body.get("query")), ids,
                                      base_scores=[it.get("base_score") for it in body["items"]],
                                      request_features=[it.get("features") or {}
                                                        for it in body["items"]])
            order = np.argsort(-trainer.model.logits(block), kind="stable")
            served = [ids[i] for i in order]
        else:
            served = ids
        ndcg[arm].append(sim.ndcg_at_k(req, served))
        impression_id = f"imp-{searches}"
        fx = pipeline.on_impression(ImpressionEvent.model_validate(
            sim.impression_event(req, served, impression_id)), ts=req.ts, source="impressions")
        pending += fx.examples
        events += 1
        for ev in sim.respond(req, served, impression_id):
            fx = pipeline.on_interaction(InteractionEvent.model_validate(ev),
                                         ts=ev.get("ts", req.ts), source="interactions")
            pending += fx.examples
            events += 1
        if len(pending) >= batch:
            trainer.learn_batch(pending)
            pending = []
        if searches % 250 == 0:  # what a published snapshot would carry
            served_stats[0] = copy.deepcopy(trainer.stats)
        if searches % every == 0:
            rows.append(row())
    rows.append(row())
    return rows
