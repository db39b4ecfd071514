"""Run the scorer app in-process for a synchronous test, and publish snapshots it can load.

The app runs with its lifespan on an event loop in a background thread (an anyio blocking
portal), so a test can poll with :func:`tests.helpers.wait_for` while the scorer's own
background tasks (the snapshot poller) keep running.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import anyio.from_thread
import httpx
import numpy as np
import redis.asyncio as aioredis
from starlette.applications import Starlette

from learner.snapshot import Snapshot
from learner.store import SnapshotStore
from ops.security import redis_options
from ops.services import free_port
from ops.settings import ScorerSettings
from serving.app import create_app

__all__ = ["RANK_BODY", "InProcessScorer", "metric", "minimal_snapshot", "publish_snapshot",
           "running_scorer", "unreachable_settings"]

#: A tiny rank request; ``log: false`` keeps Kafka out of tests that are about Redis.
RANK_BODY: dict[str, Any] = {"user_id": "u-42", "log": False,
                             "items": [{"item_id": "sku-1", "base_score": 2.0},
                                       {"item_id": "sku-2", "base_score": 1.0}]}


def minimal_snapshot(version: int, bits: int = 8) -> Snapshot:
    """The smallest snapshot the scorer loads: all-zero weights over ``2**bits`` features.

    Keep in step with :class:`serving.model.ServingModel` (what a snapshot must hold).
    """
    return Snapshot(version=version, created_ms=int(time.time() * 1000), examples=1,
                    arrays={"w": np.zeros(1 << bits, dtype=np.float32)},
                    meta={"hash_bits": bits})


async def publish_snapshot(settings: ScorerSettings, snap: Snapshot | None = None) -> int:
    """Publish ``snap`` (a minimal one by default) where ``settings`` point; its version."""
    client = aioredis.Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        store = SnapshotStore(client, prefix=settings.redis_prefix)
        if snap is None:
            snap = minimal_snapshot(await store.next_version())
        await store.publish(snap)
        return snap.version
    finally:
        await client.aclose()


def metric(text: str, name: str) -> float:
    """The value of an unlabelled metric in Prometheus text."""
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


@dataclass
class InProcessScorer:
    """A running scorer app and a synchronous way to call it."""

    portal: anyio.from_thread.BlockingPortal
    client: httpx.AsyncClient
    app: Starlette
    settings: ScorerSettings

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.portal.call(lambda: self.client.request(method, path, **kwargs))

    def rank(self, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """``POST /rank``; asserts the ``200`` the contract promises for any valid body."""
        r = self.request("POST", "/rank", json=body or RANK_BODY)
        assert r.status_code == 200, (r.status_code, r.text)
        return dict(r.json())

    def metric(self, name: str) -> float:
        return metric(self.request("GET", "/metrics").text, name)

    def publish(self, snap: Snapshot | None = None) -> int:
        return self.portal.call(publish_snapshot, self.settings, snap)


@contextmanager
def running_scorer(settings: ScorerSettings) -> Iterator[InProcessScorer]:
    """The scorer app for ``settings``, lifespan started, until the block ends."""
    app = create_app(settings)

    @asynccontextmanager
    async def serve() -> AsyncIterator[httpx.AsyncClient]:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://scorer") as client:
            yield client

    with anyio.from_thread.start_blocking_portal() as portal:
        with portal.wrap_async_context_manager(serve()) as client:
            yield InProcessScorer(portal, client, app, settings)


def unreachable_settings(**overrides: Any) -> ScorerSettings:
    """Scorer settings whose Redis and Kafka addresses are ports nothing listens on (no
    environment or ``.env`` read); the one snapshot poll at startup fails, and the next
    would come an hour later."""
    values: dict[str, Any] = {
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
        "topic_prefix": "unit.", "refresh_interval_ms": 3_600_000, **overrides}
    return ScorerSettings(_env_file=None, **values)  # type: ignore[call-arg]
