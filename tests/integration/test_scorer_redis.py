"""The HTTP scorer against a real Redis and a real Kafka broker.

The app runs in-process on an event loop in a background thread (an anyio blocking
portal), so the test can wait for conditions with :func:`tests.helpers.wait_for` while
the scorer's own background tasks keep running.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import numpy as np
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from kafka import KafkaConsumer
from starlette.applications import Starlette

from learner.features import FEATURE_NAMES, RankContext, featurize
from learner.snapshot import Snapshot
from learner.store import SnapshotStore
from ops.redis_server import LocalRedis
from ops.services import free_port
from ops.settings import ScorerSettings
from serving.app import create_app
from streams.schemas import ImpressionEvent
from streams.topics import Topics
from tests.contract import contract_examples
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

EXAMPLE: dict[str, Any] = contract_examples()["rank_request"]  # u-42 asks about sku-1, sku-2
BITS = 12


@pytest.fixture
def scorer_settings(settings_env: dict[str, str],
                    monkeypatch: pytest.MonkeyPatch) -> ScorerSettings:
    """The scorer's settings, read from the environment as in production."""
    for key, value in {**settings_env, "STREAMRANK_REFRESH_INTERVAL_MS": "20",
                       "STREAMRANK_REDIS_TIMEOUT_S": "1.0"}.items():
        monkeypatch.setenv(key, value)
    return ScorerSettings()


def _weights(lift: dict[str, float], user: str = EXAMPLE["user_id"]) -> np.ndarray:
    """Weights that add ``lift[item]`` to the logit of ``item`` for ``user`` only."""
    w = np.zeros(1 << BITS, dtype=np.float32)
    block = featurize(RankContext(user), list(lift), BITS)
    w[block.index[:, FEATURE_NAMES.index("user_x_item")]] = list(lift.values())
    return w


async def _publish(settings: ScorerSettings, lift: dict[str, float], examples: int = 10) -> int:
    client = aioredis.Redis.from_url(settings.redis_url)
    try:
        store = SnapshotStore(client, prefix=settings.redis_prefix)
        version = await store.next_version()
        await store.publish(Snapshot(version=version, created_ms=1764489600000, examples=examples,
                                     arrays={"w": _weights(lift)}, meta={"hash_bits": BITS}))
        return version
    finally:
        await client.aclose()


@dataclass
class Scorer:
    """A running scorer app and a way to call it from the (synchronous) test."""

    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient
    app: Starlette
    settings: ScorerSettings

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.portal.call(lambda: self.client.post("/rank", json=body))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def post_until(self, predicate: Callable[[dict[str, Any]], bool], message: str,
                   timeout: float = 10.0) -> dict[str, Any]:
        """Ask (``log: false``) until the answer satisfies ``predicate``; that answer."""
        last: dict[str, Any] = {}

        def answered() -> bool:
            last.update(self.post({**EXAMPLE, "log": False}))
            return predicate(last)

        wait_for(answered, timeout=timeout, message=message)
        return last

    def wait_for_version(self, version: int) -> dict[str, Any]:
        """Ask until the answer comes from model ``v{version}``; that answer."""
        return self.post_until(lambda b: b["model_version"] == f"v{version}",
                               message=f"the scorer to serve v{version}")

    def get(self, path: str) -> httpx.Response:
        return self.portal.call(lambda: self.client.get(path))

    def publish(self, lift: dict[str, float]) -> int:
        return self.portal.call(_publish, self.settings, lift)

    def metric(self, name: str) -> float:
        found = re.search(rf"^{name} (\S+)$", self.get("/metrics").text, re.M)
        assert found, name
        return float(found.group(1))


@contextmanager
def running_scorer(settings: ScorerSettings) -> Iterator[Scorer]:
    app = create_app(settings)

    @asynccontextmanager
    async def serve():  # type: ignore[no-untyped-def]
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://scorer") as client:
            yield client

    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(serve()) as client:
            yield Scorer(portal, client, app, settings)


def _order(body: dict[str, Any]) -> list[str]:
    return [item["item_id"] for item in body["items"]]


def test_a_published_snapshot_reranks_and_a_newer_one_is_picked_up(
        scorer_settings: ScorerSettings) -> None:
    with running_scorer(scorer_settings) as scorer:
        body = scorer.post({**EXAMPLE, "log": False})
        assert body["degraded"] is True and body["model_version"] is None  # nothing trained yet
        assert _order(body) == ["sku-1", "sku-2"]

        v1 = scorer.publish({"sku-2": 2.0})
        body = scorer.wait_for_version(v1)
        assert body["degraded"] is False and _order(body) == ["sku-2", "sku-1"]
        # another user: the model knows nothing about them, so the upstream order stands
        other = scorer.post({**EXAMPLE, "user_id": "u-7", "log": False})
        assert other["degraded"] is False and _order(other) == ["sku-1", "sku-2"]

        v2 = scorer.publish({"sku-1": 3.0, "sku-2": -1.0})
        assert v2 > v1
        scorer.wait_for_version(v2)
        body = scorer.post({**EXAMPLE, "log": False, "explain": True})
        assert _order(body) == ["sku-1", "sku-2"]
        assert body["items"][0]["explanation"][0] == {"feature": "user_x_item",
                                                      "contribution": 3.0}

        model = scorer.get("/model").json()
        assert model["model_version"] == f"v{v2}" and model["examples"] == 10
        assert model["created_ms"] == 1764489600000 and model["age_ms"] > 0
        assert scorer.metric("streamrank_model_version") == v2
        assert scorer.metric("streamrank_snapshot_loads_total") == 2
        assert scorer.metric("streamrank_redis_up") == 1


def test_a_corrupt_snapshot_keeps_the_previous_model(scorer_settings: ScorerSettings) -> None:
    with running_scorer(scorer_settings) as scorer:
        v1 = scorer.publish({"sku-2": 2.0})
        scorer.wait_for_version(v1)
        prefix = scorer_settings.redis_prefix
        r = redis.Redis.from_url(scorer_settings.redis_url)
        try:
            bad = int(r.incr(f"{prefix}snapshot:seq"))  # a fresh version, as a publisher takes
            r.set(f"{prefix}snapshot:v:{bad}", b"SRK1 but not really a snapshot")
            r.set(f"{prefix}snapshot:current", bad)
        finally:
            r.close()
        wait_for(lambda: scorer.metric("streamrank_snapshot_errors_total") >= 1, timeout=10,
                 message="the scorer to reject the corrupt snapshot")
        body = scorer.post({**EXAMPLE, "log": False})
        assert body["degraded"] is False and body["model_version"] == f"v{v1}"
        assert _order(body) == ["sku-2", "sku-1"]
        errors = scorer.metric("streamrank_snapshot_errors_total")
        # the bad version is not retried on every poll
        v_ok = scorer.publish({"sku-1": 1.0})
        scorer.wait_for_version(v_ok)
        assert scorer.metric("streamrank_snapshot_errors_total") == errors


def test_the_served_list_arrives_on_the_impressions_topic(
        scorer_settings: ScorerSettings) -> None:
    with running_scorer(scorer_settings) as scorer:
        version = scorer.publish({"sku-2": 2.0})
        scorer.wait_for_version(version)
        body = scorer.post({**EXAMPLE, "impression_id": "imp-int-1"})
        assert body["impression_id"] == "imp-int-1" and _order(body) == ["sku-2", "sku-1"]
        wait_for(lambda: scorer.metric("streamrank_impressions_logged_total") >= 1, timeout=60,
                 message="the broker to acknowledge the impression")
        assert scorer.metric("streamrank_impressions_failed_total") == 0

    consumer = KafkaConsumer(Topics(scorer_settings.topic_prefix).impressions,
                             bootstrap_servers=scorer_settings.kafka_bootstrap_servers,
                             auto_offset_reset="earliest", consumer_timeout_ms=500)
    records: list[Any] = []

    def consumed() -> bool:
        records.extend(consumer)  # what arrived within consumer_timeout_ms
        return bool(records)

    try:
        wait_for(consumed, timeout=60, message="the impression on the impressions topic")
    finally:
        consumer.close()
    assert len(records) == 1  # the log: false requests were not logged
    record = records[0]
    assert record.key == b"u-42"
    raw = orjson.loads(record.value)
    event = ImpressionEvent.model_validate(raw)
    assert event.impression_id == "imp-int-1" and event.user_id == "u-42"
    assert (event.session_id, event.query) == ("s-9", "running shoes")
    assert event.model_version == f"v{version}"
    assert [(i.item_id, i.position) for i in event.items] == [("sku-2", 1), ("sku-1", 2)]
    assert [i.base_score for i in event.items] == [11.0, 12.3]
    assert event.items[1].features == {"price": 59.9}
    assert all(i.propensity is None for i in event.items)
    assert event.context == {"device": "mobile"}
    assert event.ts is not None and event.ts > 1764489600000


def test_when_redis_goes_away_the_answer_degrades_and_recovers(
        scorer_settings: ScorerSettings, tmp_path: Path) -> None:
    # a Redis of its own, to stop and start (a restart comes back empty)
    with LocalRedis(port=free_port(), data_dir=tmp_path / "redis") as server:
        settings = scorer_settings.model_copy(update={"redis_url": server.url})
        with running_scorer(settings) as scorer:
            version = scorer.publish({"sku-2": 2.0})
            scorer.wait_for_version(version)
            server.stop()
            body = scorer.post_until(lambda b: b["degraded"], message="a degraded answer")
            # the cached model still ranks, flagged degraded
            assert body["model_version"] == f"v{version}" and _order(body) == ["sku-2", "sku-1"]
            assert scorer.get("/healthz").json()["redis_ok"] is False
            assert scorer.metric("streamrank_redis_up") == 0
            server.start()
            # Redis is back, empty: the cached model is served again
            body = scorer.post_until(lambda b: not b["degraded"], message="a full answer")
            assert body["model_version"] == f"v{version}" and _order(body) == ["sku-2", "sku-1"]
