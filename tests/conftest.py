"""Fixtures for the integration and end-to-end tests: a real Kafka broker and a real Redis.

Services start lazily: only a test that asks for ``kafka``, ``redis_server`` or a
fixture built on them (``redis_url``, ``settings_env``) starts one, once per
session. Unit tests start nothing.

Point the suite at running services instead of starting local ones with::

    STREAMRANK_TEST_KAFKA=127.0.0.1:9092
    STREAMRANK_TEST_REDIS_URL=redis://127.0.0.1:6379/0   # its database is FLUSHDB-ed per test

Each test gets its own topics (``topic_prefix``) and Redis key prefix, so
tests never see each other's data even on a shared broker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from ops.broker import LocalKafka, kafka_reachable
from ops.redis_server import LocalRedis, redis_reachable
from ops.services import free_port, free_ports
from tests.helpers import ExternalKafka, ExternalRedis

__all__: list[str] = []

KAFKA_ENV = "STREAMRANK_TEST_KAFKA"
REDIS_ENV = "STREAMRANK_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka | ExternalKafka]:
    """The session's Kafka broker: a started ``LocalKafka``, or the one named by ``STREAMRANK_TEST_KAFKA``."""
    external = os.environ.get(KAFKA_ENV)
    if external:
        if not kafka_reachable(external, timeout=10.0):
            pytest.fail(f"{KAFKA_ENV}={external} does not answer; start that broker or unset {KAFKA_ENV}")
        yield ExternalKafka(external)
        return
    port, controller_port = free_ports(2)
    broker = LocalKafka(port=port, controller_port=controller_port, data_dir=tmp_path_factory.mktemp("kafka"))
    broker.start(timeout=90)
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis | ExternalRedis]:
    """The session's Redis: a started ``LocalRedis``, or the one named by ``STREAMRANK_TEST_REDIS_URL``."""
    external = os.environ.get(REDIS_ENV)
    if external:
        if not redis_reachable(external, timeout=5.0):
            pytest.fail(f"{REDIS_ENV}={external} does not answer; start that server or unset {REDIS_ENV}")
        yield ExternalRedis(external)
        return
    server = LocalRedis(port=free_port(), data_dir=tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic prefix no other test uses, e.g. ``"t1a2b3c4d5e."``: each test gets fresh topics."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def redis_url(redis_server: LocalRedis | ExternalRedis) -> str:
    """URL of the session Redis's database, emptied (FLUSHDB) before the test."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        client.flushdb()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture
def settings_env(kafka: LocalKafka | ExternalKafka, redis_url: str, topic_prefix: str) -> dict[str, str]:
    """``STREAMRANK_`` variables for a worker or scorer under test: real services, names unique to the test.

    Pass them to a subprocess (``env={**os.environ, **settings_env}``) or set them
    with ``monkeypatch.setenv`` before building a settings object.
    """
    return {
        "STREAMRANK_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "STREAMRANK_REDIS_URL": redis_url,
        "STREAMRANK_TOPIC_PREFIX": topic_prefix,
        "STREAMRANK_REDIS_PREFIX": topic_prefix.rstrip(".") + ":",
    }
