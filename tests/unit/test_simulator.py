"""The traffic simulator: determinism, click model, ground truth, A/B driver, contract."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.simulator import (
    ClickModel,
    Request,
    Simulator,
    TrafficStats,
    make_catalog,
    make_users,
    run_traffic,
)
from ops.simulator.ab import RankFn
from streams.schemas import ImpressionEvent, InteractionEvent, ItemEvent


class RecordingProducer:
    """The two producer calls run_traffic makes, kept in memory (our own SDK interface)."""

    def __init__(self) -> None:
        self.impressions: list[dict[str, Any]] = []
        self.interactions: list[dict[str, Any]] = []

    def impression(self, event: Mapping[str, Any]) -> None:
        self.impressions.append(dict(event))

    def interaction(self, event: Mapping[str, Any]) -> None:
        self.interactions.append(dict(event))


def fake_scorer(sim: Simulator, producer: RecordingProducer,
                order: str) -> RankFn:
    """A stand-in for the scorer: orders the body's items and logs the impression itself."""

    def rank(body: dict[str, Any]) -> tuple[Sequence[str], str]:
        ids = [it["item_id"] for it in body["items"]]
        if order == "perfect":
            user = sim.population.user_index(body["user_id"])
            rel = sim.population.true_relevance(user, [sim.item_index(i) for i in ids])
            ids = [ids[j] for j in np.argsort(-rel, kind="stable")]
        impression_id = sim.new_impression_id()
        by_id = {it["item_id"]: it for it in body["items"]}
        producer.impression({
            "impression_id": impression_id, "user_id": body["user_id"],
            "session_id": body["session_id"], "query": body["query"],
            "items": [{"item_id": i, "position": p, "base_score": by_id[i]["base_score"]}
                      for p, i in enumerate(ids, start=1)],
            "context": body["context"], "model_version": f"fake-{order}",
        })
        return ids, impression_id

    return rank


def traffic(sim: Simulator, n: int) -> list[Request]:
    return [sim.next_request() for _ in range(n)]


# --- determinism ---------------------------------------------------------------------

def test_same_seed_gives_the_same_catalog_requests_and_clicks() -> None:
    a, b = Simulator(seed=7), Simulator(seed=7)
    assert a.catalog_events() == b.catalog_events()
    for ra, rb in zip(traffic(a, 50), traffic(b, 50)):
        assert ra.body == rb.body and ra.ts == rb.ts
        assert a.respond(ra, ra.item_ids, "i") == b.respond(rb, rb.item_ids, "i")


def test_another_seed_gives_other_traffic() -> None:
    a, b = Simulator(seed=1), Simulator(seed=2)
    assert a.catalog_events() != b.catalog_events()
    assert [r.body for r in traffic(a, 20)] != [r.body for r in traffic(b, 20)]


def test_requests_do_not_depend_on_how_lists_were_served() -> None:
    # requests and clicks draw from separate streams: two rankers see the same requests
    a, b = Simulator(seed=3), Simulator(seed=3)
    for _ in range(100):
        ra, rb = a.next_request(), b.next_request()
        assert ra.body == rb.body
        a.respond(ra, ra.item_ids)
        b.respond(rb, b.oracle_order(rb))


# --- catalog, users, queries ---------------------------------------------------------

def test_catalog_has_ids_categories_brands_and_category_price_levels() -> None:
    cat = make_catalog(300, np.random.default_rng(0))
    assert cat.item_ids[0] == "sku-0001" and len(set(cat.item_ids)) == 300
    assert np.bincount(cat.category).tolist() == [30] * 10
    assert 8 <= len(set(cat.brand.tolist())) <= 15
    medians = [float(np.median(cat.price[cat.category == c])) for c in range(10)]
    assert max(medians) / min(medians) > 4  # tents cost more than swim caps
    assert abs(float(cat.price_level.mean())) < 0.3
    events = list(cat.item_events())
    assert [ItemEvent.model_validate(e).item_id for e in events] == cat.item_ids


def test_true_relevance_vectorized_agrees_with_one_item_at_a_time() -> None:
    cat = make_catalog(120, np.random.default_rng(0))
    pop = make_users(30, cat, np.random.default_rng(1))
    items = np.arange(len(cat))
    for user in (0, 7, 29):
        fast = pop.true_relevance(user, items)
        slow = np.array([pop.true_relevance(user, [i])[0] for i in items])
        np.testing.assert_allclose(fast, slow)
        assert ((fast >= 0) & (fast <= 1)).all()
        assert fast[pop.favourites[user]].mean() > fast.mean()


def test_personal_relevance_varies_within_a_category() -> None:
    # the upstream order is the same for everyone, so this spread is what a reranker wins
    sim = Simulator(seed=0)
    items = sim.catalog.items_in(0)
    rel = np.stack([sim.population.true_relevance(u, items) for u in range(200)])
    assert float(rel.std(axis=0).mean()) > 0.05
    best = rel.argmax(axis=1)
    assert len(set(best.tolist())) > 10  # users disagree on the best item


def test_request_body_follows_the_rank_contract() -> None:
    sim = Simulator(seed=0)
    for req in traffic(sim, 100):
        body = req.body
        assert set(body) >= {"user_id", "session_id", "query", "items", "context"}
        ids = [it["item_id"] for it in body["items"]]
        assert tuple(ids) == req.item_ids and len(set(ids)) == len(ids) == 20
        scores = [it["base_score"] for it in body["items"]]
        assert scores == sorted(scores, reverse=True)
        assert all(it["features"]["price"] > 0 for it in body["items"])
        in_category = sim.catalog.category[req.query.items] == req.query.category
        assert in_category.sum() == 17  # 17 of the category, 3 from related ones


def test_sessions_are_short_bursts_of_one_user() -> None:
    sim = Simulator(seed=0)
    reqs = traffic(sim, 400)
    users_of = {}
    for r in reqs:
        users_of.setdefault(r.session_id, set()).add(r.user_id)
    assert all(len(u) == 1 for u in users_of.values())
    assert 400 / 8 < len(users_of) < 400 / 2
    assert len({r.user_id for r in reqs}) < len(users_of)  # users come back


# --- click model ---------------------------------------------------------------------

def test_ctr_falls_with_position_at_equal_relevance() -> None:
    model = ClickModel(eta=1.0, max_clicks=20)
    rng = np.random.default_rng(0)
    clicks = np.zeros(10)
    for _ in range(20_000):
        clicks += model.simulate(np.full(10, 0.4), rng).clicked
    ctr = clicks / 20_000
    assert (np.diff(ctr) < 0).all()
    np.testing.assert_allclose(ctr, 0.4 / np.arange(1, 11), atol=0.01)


def test_examine_table_and_click_cap() -> None:
    table = ClickModel(examine=[1.0, 0.5, 0.2])
    assert table.examination(5).tolist() == [1.0, 0.5, 0.2, 0.0, 0.0]
    capped = ClickModel(examine=np.ones(10), max_clicks=3, cart_rate=0.0)
    out = capped.simulate(np.ones(10), np.random.default_rng(0))
    assert out.clicked.tolist() == [True] * 3 + [False] * 7
    assert not out.carted.any() and not out.purchased.any()


def test_carts_and_purchases_follow_clicks_and_grow_with_relevance() -> None:
    model = ClickModel(examine=np.ones(5), max_clicks=5)
    rng = np.random.default_rng(0)
    carts = np.zeros(5)
    rel = np.array([0.2, 0.4, 0.6, 0.8, 1.0])
    for _ in range(5000):
        out = model.simulate(rel, rng)
        assert not (out.carted & ~out.clicked).any()
        assert not (out.purchased & ~out.carted).any()
        carts += out.carted
    assert (np.diff(carts) > 0).all()


# --- ground truth --------------------------------------------------------------------

def test_oracle_order_has_the_maximum_ndcg() -> None:
    sim = Simulator(seed=0)
    rng = np.random.default_rng(0)
    for req in traffic(sim, 100):
        oracle = sim.ndcg_at_k(req, sim.oracle_order(req))
        assert oracle == pytest.approx(1.0)
        assert sim.ndcg_at_k(req, req.item_ids) <= oracle + 1e-12
        for _ in range(5):
            shuffled = [req.item_ids[j] for j in rng.permutation(len(req.item_ids))]
            assert sim.ndcg_at_k(req, shuffled) <= oracle + 1e-12


def test_serving_an_item_that_was_not_a_candidate_is_an_error() -> None:
    sim = Simulator(seed=0)
    req = sim.next_request()
    with pytest.raises(ValueError, match="not a candidate"):
        sim.respond(req, ["sku-9999"])
    with pytest.raises(ValueError, match="repeats"):
        sim.respond(req, [req.item_ids[0], req.item_ids[0]])


# --- the A/B driver ------------------------------------------------------------------

def test_a_perfect_ranker_beats_the_upstream_order() -> None:
    sim, producer = Simulator(seed=0), RecordingProducer()
    stats = run_traffic(sim, fake_scorer(sim, producer, "perfect"), producer, 3000)
    assert stats.requests == 3000
    assert 1300 < stats.upstream.impressions < 1700
    assert stats.reranked.ctr > 1.4 * stats.upstream.ctr
    assert stats.reranked.mean_ndcg == pytest.approx(1.0)
    assert stats.upstream.mean_ndcg < 0.7
    assert stats.reranked.purchases > stats.upstream.purchases


def test_a_ranker_that_keeps_the_upstream_order_ties_with_it() -> None:
    sim, producer = Simulator(seed=0), RecordingProducer()
    stats = run_traffic(sim, fake_scorer(sim, producer, "upstream"), producer, 3000)
    assert stats.reranked.ctr == pytest.approx(stats.upstream.ctr, rel=0.1)
    assert stats.reranked.mean_ndcg == pytest.approx(stats.upstream.mean_ndcg, abs=0.03)


def test_every_emitted_event_follows_the_contract_and_joins() -> None:
    sim, producer = Simulator(seed=0), RecordingProducer()
    items = [ItemEvent.model_validate(e) for e in sim.catalog_events()]
    stats = run_traffic(sim, fake_scorer(sim, producer, "perfect"), producer, 500)
    impressions = [ImpressionEvent.model_validate(e) for e in producer.impressions]
    interactions = [InteractionEvent.model_validate(e) for e in producer.interactions]
    assert len(impressions) == stats.requests == 500
    assert len({i.impression_id for i in impressions}) == 500
    shown = {i.impression_id: (i.user_id, i.session_id, {it.item_id for it in i.items})
             for i in impressions}
    price = {i.item_id: i.price for i in items}
    for ev in interactions:
        assert ev.impression_id is not None
        user, session, item_ids = shown[ev.impression_id]
        assert (ev.user_id, ev.session_id) == (user, session) and ev.item_id in item_ids
        assert (ev.value == price[ev.item_id]) if ev.type == "purchase" else ev.value is None
    counts = {t: sum(e.type == t for e in interactions) for t in ("click", "purchase")}
    assert counts["click"] == stats.upstream.clicks + stats.reranked.clicks
    assert counts["purchase"] == stats.upstream.purchases + stats.reranked.purchases
    upstream = [i for i in impressions if i.model_version == "upstream"]
    assert len(upstream) == stats.upstream.impressions
    assert all(i.context["arm"] == "upstream" for i in upstream)


def test_progress_is_reported_and_recent_figures_use_the_window() -> None:
    sim, producer = Simulator(seed=0), RecordingProducer()
    seen: list[int] = []
    stats = run_traffic(sim, fake_scorer(sim, producer, "upstream"), producer, 250,
                        on_progress=lambda s: seen.append(s.requests), progress_every=100,
                        window=20, upstream_share=0.0)
    assert seen == [100, 200, 250]
    assert stats.upstream.impressions == 0 and stats.reranked.impressions == 250
    assert len(stats.reranked._recent) == 20
    assert "reranked CTR" in stats.summary(recent=True)
    assert stats.as_dict()["reranked"]["impressions"] == 250


def test_stats_start_at_zero() -> None:
    stats = TrafficStats()
    assert stats.upstream.ctr == stats.reranked.recent_ndcg == 0.0


@settings(max_examples=25, deadline=None)
@given(n_users=st.integers(1, 20), n_items=st.integers(1, 60), k=st.integers(1, 25),
       seed=st.integers(0, 2**32 - 1))
def test_any_small_world_yields_valid_requests_and_events(n_users: int, n_items: int,
                                                          k: int, seed: int) -> None:
    sim, producer = Simulator(n_users, n_items, seed, k=k), RecordingProducer()
    for event in sim.catalog_events():
        ItemEvent.model_validate(event)
    run_traffic(sim, fake_scorer(sim, producer, "perfect"), producer, 30)
    for imp in producer.impressions:
        items = ImpressionEvent.model_validate(imp).items
        assert len(items) == min(k, n_items)
        assert len({it.item_id for it in items}) == len(items)
    for event in producer.interactions:
        InteractionEvent.model_validate(event)
