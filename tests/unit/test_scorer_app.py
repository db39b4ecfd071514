"""The HTTP scorer with Redis and Kafka both unreachable: it still answers, never a 5xx.

Each app points ``redis_url`` and ``kafka_bootstrap_servers`` at closed ports. The app
runs in-process (its lifespan included) behind httpx's ASGI transport.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.from_thread
import httpx
import numpy as np
import orjson
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st
from starlette.applications import Starlette

from learner.features import FEATURE_NAMES, RankContext
from learner.snapshot import Snapshot
from ops.services import free_port
from serving.app import create_app
from serving.impressions import ImpressionLogger
from serving.model import ServingModel
from serving.ranking import rank as real_rank
from serving.schemas import RankResponse
from tests.contract import bad_variants, contract_examples
from tests.scorer_harness import unreachable_settings

EXAMPLE: dict[str, Any] = contract_examples()["rank_request"]


@asynccontextmanager
async def _serve(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://scorer") as client:
        yield client


@pytest_asyncio.fixture
async def app() -> AsyncIterator[Starlette]:
    yield create_app(unreachable_settings())


@pytest_asyncio.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with _serve(app) as c:
        yield c


def _model(weights: dict[str, float] | None = None, version: int = 3) -> ServingModel:
    bits = 10
    w = np.zeros(1 << bits, dtype=np.float32)
    snap = Snapshot(version=version, created_ms=int(time.time() * 1000) - 1500, examples=42,
                    arrays={"w": w}, meta={"hash_bits": bits})
    model = ServingModel(snap)
    for item_id, value in (weights or {}).items():
        block = model.features(RankContext(EXAMPLE["user_id"]), [item_id])
        w[block.index[0, FEATURE_NAMES.index("user_x_item")]] += value
    return model


def _install(app: Starlette, model: ServingModel) -> None:
    """Stand in for a successful poll, and for a Redis with no user state (the real ones
    are covered by the integration tests)."""
    app.state.cache.model = model
    app.state.cache.redis_ok = True
    app.state.reader = None


# -- degraded answers -------------------------------------------------------------------


@pytest.mark.asyncio
async def test_without_redis_the_answer_is_the_upstream_order_degraded(
        client: httpx.AsyncClient) -> None:
    r = await client.post("/rank", json=EXAMPLE)
    assert r.status_code == 200
    body = RankResponse.model_validate(r.json()).model_dump()
    assert body["degraded"] is True and body["model_version"] is None
    assert [i["item_id"] for i in body["items"]] == ["sku-1", "sku-2"]  # 12.3 before 11.0
    assert [i["score"] for i in body["items"]] == [12.3, 11.0]
    assert all(i["propensity"] is None and i["explanation"] is None for i in body["items"])
    assert body["impression_id"].startswith("imp-")


@pytest.mark.asyncio
async def test_items_without_base_score_follow_in_the_order_sent(
        client: httpx.AsyncClient) -> None:
    items = [{"item_id": "a"}, {"item_id": "b", "base_score": -1}, {"item_id": "c"},
             {"item_id": "d", "base_score": 2}]
    r = await client.post("/rank", json={"user_id": "u", "items": items, "log": False})
    assert [i["item_id"] for i in r.json()["items"]] == ["d", "b", "a", "c"]


@pytest.mark.asyncio
async def test_the_clients_impression_id_is_kept_and_fresh_ones_differ(
        client: httpx.AsyncClient) -> None:
    r = await client.post("/rank", json={**EXAMPLE, "impression_id": "imp-mine"})
    assert r.json()["impression_id"] == "imp-mine"
    a, b = [(await client.post("/rank", json=EXAMPLE)).json()["impression_id"] for _ in "ab"]
    assert a != b


@pytest.mark.asyncio
async def test_unknown_fields_are_ignored(client: httpx.AsyncClient) -> None:
    r = await client.post("/rank", json={**EXAMPLE, "experiment": "b", "log": False})
    assert r.status_code == 200


# -- with a model -----------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_model_reorders_and_reports_its_version(app: Starlette,
                                                        client: httpx.AsyncClient) -> None:
    _install(app, _model({"sku-2": 1.0}))
    r = await client.post("/rank", json=EXAMPLE)
    body = r.json()
    assert (body["degraded"], body["model_version"]) == (False, "v3")
    assert [i["item_id"] for i in body["items"]] == ["sku-2", "sku-1"]
    # R = softmax(S): logits 1 and 0
    assert body["items"][0]["score"] == pytest.approx(np.e / (np.e + 1))
    assert body["items"][1]["score"] == pytest.approx(1 / (np.e + 1))


@pytest.mark.asyncio
async def test_a_cached_model_keeps_ranking_without_redis_but_says_degraded(
        app: Starlette, client: httpx.AsyncClient) -> None:
    _install(app, _model({"sku-2": 1.0}))
    app.state.cache.redis_ok = False
    body = (await client.post("/rank", json=EXAMPLE)).json()
    assert body["degraded"] is True and body["model_version"] == "v3"
    assert [i["item_id"] for i in body["items"]] == ["sku-2", "sku-1"]


@pytest.mark.asyncio
async def test_explain_fills_each_item_with_its_top_contributions(
        app: Starlette, client: httpx.AsyncClient) -> None:
    _install(app, _model({"sku-2": 1.0, "sku-1": -0.25}))
    body = (await client.post("/rank", json={**EXAMPLE, "explain": True})).json()
    RankResponse.model_validate(body)
    for item in body["items"]:
        explanation = item["explanation"]
        assert len(explanation) == 3
        assert all(set(e) == {"feature", "contribution"} for e in explanation)
        assert all(e["feature"] in FEATURE_NAMES for e in explanation)
    assert body["items"][0]["explanation"][0] == {"feature": "user_x_item", "contribution": 1.0}
    assert body["items"][1]["explanation"][0] == {"feature": "user_x_item",
                                                  "contribution": -0.25}


@pytest.mark.asyncio
async def test_an_unexpected_error_while_ranking_still_answers_200_degraded(
        app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:

    def broken_rank(model: Any, *args: Any, **kwargs: Any) -> Any:
        if model is not None:
            raise RuntimeError("boom")
        return real_rank(model, *args, **kwargs)

    monkeypatch.setattr("serving.app.rank", broken_rank)
    _install(app, _model({"sku-2": 1.0}))
    r = await client.post("/rank", json=EXAMPLE)
    assert r.status_code == 200
    assert r.json()["degraded"] is True
    assert [i["item_id"] for i in r.json()["items"]] == ["sku-1", "sku-2"]
    metrics = (await client.get("/metrics")).text
    assert "streamrank_rank_errors_total 1.0" in metrics
    assert 'streamrank_rank_degraded_total{reason="error"} 1.0' in metrics


@pytest.mark.asyncio
async def test_even_a_failing_fallback_answers_200_with_the_candidates_as_sent(
        client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_rank(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr("serving.app.rank", broken_rank)
    items = [{"item_id": "a", "base_score": 1}, {"item_id": "b", "base_score": 2}]
    r = await client.post("/rank", json={"user_id": "u", "items": items})
    assert r.status_code == 200 and r.json()["degraded"] is True
    assert [i["item_id"] for i in r.json()["items"]] == ["a", "b"]


# -- bad input --------------------------------------------------------------------------


def _bad_requests() -> list[Any]:
    cases = [pytest.param(path, doc, id=f"{problem}:{path}")
             for path, problem, doc in bad_variants("rank_request")]
    extra = {
        "items.1.base_score": True,  # a bool is not a number
        "items.0.features.price": "59.9",
        "context.device": ["mobile"],
        "log": 0,
        "impression_id": 7,
        "user_id": "",
        "items": [],
        "items.0.item_id": "",
    }
    for path, value in extra.items():
        doc = copy.deepcopy(EXAMPLE)
        node: Any = doc
        *parents, last = path.split(".")
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value
        cases.append(pytest.param(path, doc, id=f"bad value:{path}={value!r}"))
    return cases


@pytest.mark.parametrize(("path", "doc"), _bad_requests())
@pytest.mark.asyncio
async def test_bad_input_gets_422_naming_the_field(client: httpx.AsyncClient, path: str,
                                                   doc: dict[str, Any]) -> None:
    r = await client.post("/rank", content=orjson.dumps(doc))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"].startswith(path), body["error"]
    locs = [".".join(str(p) for p in d["loc"]) for d in body["detail"]]
    assert any(loc.startswith(path) for loc in locs), locs


@pytest.mark.parametrize("raw", [b"{", b"", b"\xff\xfe", b'{"user_id": NaN}',
                                 b'{"user_id": "u", "items": [{"item_id": "a"}],}'])
@pytest.mark.asyncio
async def test_a_body_that_is_not_json_gets_422(client: httpx.AsyncClient, raw: bytes) -> None:
    r = await client.post("/rank", content=raw)
    assert r.status_code == 422
    assert r.json()["error"].startswith("body: invalid JSON")
    assert r.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize("raw", [b"[]", b'"rank"', b"null", b"3"])
@pytest.mark.asyncio
async def test_a_body_that_is_not_an_object_gets_422(client: httpx.AsyncClient,
                                                     raw: bytes) -> None:
    r = await client.post("/rank", content=raw)
    assert r.status_code == 422 and r.json()["error"].startswith("body: expected a JSON object")


@pytest.mark.asyncio
async def test_an_infinite_score_gets_422(client: httpx.AsyncClient) -> None:
    raw = b'{"user_id": "u", "items": [{"item_id": "a", "base_score": 1e999}]}'
    r = await client.post("/rank", content=raw)
    assert r.status_code == 422


@pytest.mark.asyncio
async def test_too_many_candidates_get_422_naming_items() -> None:
    async with _serve(create_app(unreachable_settings(max_candidates=2))) as client:
        items = [{"item_id": f"sku-{i}"} for i in range(3)]
        r = await client.post("/rank", json={"user_id": "u", "items": items})
        assert r.status_code == 422
        assert r.json()["error"].startswith("items: at most 2 candidates")
        assert r.json()["detail"][0]["loc"] == ["items"]
        ok = await client.post("/rank", json={"user_id": "u", "items": items[:2]})
        assert ok.status_code == 200


@pytest.mark.asyncio
async def test_a_body_over_the_limit_gets_413() -> None:
    async with _serve(create_app(unreachable_settings(max_body_bytes=1024))) as client:
        items = [{"item_id": f"sku-{i:04d}"} for i in range(100)]
        r = await client.post("/rank", json={"user_id": "u", "items": items})
        assert r.status_code == 413
        assert "STREAMRANK_MAX_BODY_BYTES" in r.json()["error"]

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
            yield b'{"user_id": "u", "items": ['
            for _ in range(100):
                yield b'{"item_id": "sku-0000"},'
            yield b'{"item_id": "x"}]}'

        r = await client.post("/rank", content=chunks())
        assert r.status_code == 413


@pytest.mark.asyncio
async def test_get_on_rank_is_not_allowed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/rank")).status_code == 405


# -- the other endpoints ----------------------------------------------------------------


@pytest.mark.asyncio
async def test_model_without_a_model_is_all_nulls(client: httpx.AsyncClient) -> None:
    r = await client.get("/model")
    assert r.status_code == 200
    assert r.json() == {"model_version": None, "created_ms": None, "examples": None,
                        "age_ms": None, "redis_ok": False}


@pytest.mark.asyncio
async def test_model_describes_the_served_model(app: Starlette,
                                                client: httpx.AsyncClient) -> None:
    model = _model()
    _install(app, model)
    body = (await client.get("/model")).json()
    assert body["model_version"] == "v3" and body["examples"] == 42
    assert body["created_ms"] == model.snapshot.created_ms
    assert 1500 <= body["age_ms"] < 60_000


@pytest.mark.asyncio
async def test_healthz_answers_while_degraded(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model_version": None, "redis_ok": False,
                        "degraded": True}


METRIC_NAMES = [
    "streamrank_http_requests_total", "streamrank_rank_latency_seconds_bucket",
    "streamrank_rank_candidates_bucket", "streamrank_rank_degraded_total",
    "streamrank_rank_errors_total", "streamrank_impressions_logged_total",
    "streamrank_impressions_dropped_total", "streamrank_impressions_failed_total",
    "streamrank_impressions_queued", "streamrank_model_loaded", "streamrank_model_version",
    "streamrank_model_age_seconds", "streamrank_redis_up", "streamrank_snapshot_loads_total",
    "streamrank_snapshot_errors_total",
]


@pytest.mark.asyncio
async def test_metrics_are_prometheus_text_with_every_metric(client: httpx.AsyncClient) -> None:
    await client.post("/rank", json=EXAMPLE)
    r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    for name in METRIC_NAMES:
        assert f"\n{name}" in r.text, name
    assert 'streamrank_http_requests_total{endpoint="/rank",status="200"} 1.0' in r.text
    assert 'streamrank_rank_degraded_total{reason="redis_down"} 1.0' in r.text
    assert "streamrank_rank_candidates_count 1.0" in r.text
    assert "streamrank_snapshot_errors_total 1.0" in r.text  # the failed startup poll


@pytest.mark.asyncio
async def test_two_apps_in_one_process_keep_their_own_metrics() -> None:
    async with _serve(create_app(unreachable_settings())) as a, _serve(create_app(unreachable_settings())) as b:
        await a.post("/rank", json={**EXAMPLE, "log": False})
        text_b = (await b.get("/metrics")).text
        assert 'streamrank_http_requests_total{endpoint="/rank"' not in text_b


# -- impressions ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_full_impression_buffer_drops_and_counts_without_blocking() -> None:
    async with _serve(create_app(unreachable_settings(impression_buffer=1))) as client:
        started = time.monotonic()
        for _ in range(5):
            assert (await client.post("/rank", json=EXAMPLE)).status_code == 200
        assert time.monotonic() - started < 2.0
        metrics = (await client.get("/metrics")).text
    dropped = re.search(r"^streamrank_impressions_dropped_total (\S+)$", metrics, re.M)
    # one fits the buffer, and the waiting thread holds at most one more
    assert dropped is not None and float(dropped.group(1)) >= 3


@pytest.mark.asyncio
async def test_log_false_logs_nothing(app: Starlette, client: httpx.AsyncClient) -> None:
    await client.post("/rank", json={**EXAMPLE, "log": False})
    imp: ImpressionLogger = app.state.impressions
    assert (imp.queued, imp.logged, imp.dropped, imp.failed) == (0, 0, 0, 0)
    await client.post("/rank", json=EXAMPLE)
    assert imp.queued + imp.logged + imp.dropped + imp.failed == 1


def test_the_impression_logger_never_blocks_and_accounts_for_every_event() -> None:
    logger = ImpressionLogger(f"127.0.0.1:{free_port()}", "unit.impressions", buffer_size=2)
    logger.start()
    event = {"impression_id": "imp-1", "user_id": "u-42",
             "items": [{"item_id": "sku-1", "position": 1}]}
    started = time.monotonic()
    accepted = sum(logger.log(event) for _ in range(100))
    assert time.monotonic() - started < 0.5
    assert accepted <= 3 and logger.dropped == 100 - accepted
    started = time.monotonic()
    logger.close(timeout=2.0)
    assert time.monotonic() - started < 2.0
    assert logger.logged + logger.dropped + logger.failed == 100
    assert logger.last_error is not None and "unreachable" in logger.last_error


# -- no input causes a 5xx --------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if prefix:
        yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*prefix, i))


@st.composite
def _mutated_example(draw: st.DrawFn) -> bytes:
    doc = copy.deepcopy(EXAMPLE)
    path = draw(st.sampled_from(list(_paths(doc))))
    node: Any = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = draw(_json)
    return orjson.dumps(doc)


@pytest.fixture(scope="module")
def blocking_client() -> Iterator[tuple[Any, httpx.AsyncClient]]:
    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(_serve(create_app(unreachable_settings()))) as c:
            yield portal, c


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_mutated_example() | _json.map(orjson.dumps) | st.binary(max_size=64))
def test_no_input_causes_a_5xx(blocking_client: tuple[Any, httpx.AsyncClient],
                               raw: bytes) -> None:
    portal, client = blocking_client
    r = portal.call(lambda: client.post("/rank", content=raw))
    assert r.status_code in (200, 422), r.text
