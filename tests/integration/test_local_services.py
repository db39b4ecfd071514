"""The local Kafka broker and Redis server that the other suites and ``streamrank demo`` rely on."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from ops.broker import LocalKafka, LocalKafkaError, kafka_reachable
from ops.redis_server import LocalRedis, LocalRedisError, redis_reachable
from ops.services import ensure_services, free_port, free_ports
from tests.helpers import ExternalKafka, ExternalRedis, wait_for

pytestmark = pytest.mark.integration


def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create ``name`` and wait until every partition has a leader."""
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics({name: {"num_partitions": partitions, "replication_factor": 1}}, wait_for_metadata=True)


def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Write ``(key, value)`` records and wait for every acknowledgement."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in records:
            producer.send(topic, key=key, value=value)
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 30.0) -> list[tuple[bytes, bytes]]:
    """Read ``topic`` from the beginning in a fresh consumer group until ``expected`` records arrived."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    received: list[tuple[bytes, bytes]] = []

    def enough() -> bool:
        for batch in consumer.poll(timeout_ms=200).values():
            received.extend((record.key, record.value) for record in batch)
        return len(received) >= expected

    try:
        wait_for(enough, timeout, interval=0.0, message=f"{expected} records on {topic} (got {received})")
    finally:
        consumer.close()
    return received


@pytest.fixture
def own_kafka(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of this test only, for tests that stop or restart it."""
    port, controller_port = free_ports(2)
    broker = LocalKafka(port=port, controller_port=controller_port, data_dir=tmp_path / "kafka")
    try:
        yield broker.start()
    finally:
        broker.close()


def test_broker_answers_metadata(kafka: LocalKafka | ExternalKafka) -> None:
    assert kafka_reachable(kafka.bootstrap_servers, timeout=5.0)
    with KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers) as admin:
        cluster = admin.describe_cluster()
    assert len(cluster["brokers"]) >= 1


def test_producer_and_consumer_round_trip_a_record(kafka: LocalKafka | ExternalKafka, topic_prefix: str) -> None:
    topic = f"{topic_prefix}round-trip"
    create_topic(kafka.bootstrap_servers, topic)

    produce(kafka.bootstrap_servers, topic, [(b"user-1", b'{"query": "red shoes"}')])

    assert consume_all(kafka.bootstrap_servers, topic, expected=1) == [(b"user-1", b'{"query": "red shoes"}')]


def test_restart_keeps_the_topics_data_and_stop_frees_the_port(own_kafka: LocalKafka, topic_prefix: str) -> None:
    topic = f"{topic_prefix}durable"
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(10)]
    create_topic(own_kafka.bootstrap_servers, topic, partitions=2)
    produce(own_kafka.bootstrap_servers, topic, records)

    own_kafka.restart()

    assert own_kafka.is_running()
    assert sorted(consume_all(own_kafka.bootstrap_servers, topic, expected=10)) == sorted(records)

    # (here rather than in a test of its own: a broker start costs seconds)
    own_kafka.stop()
    own_kafka.stop()  # idempotent
    assert not own_kafka.is_running()
    assert not kafka_reachable(own_kafka.bootstrap_servers, timeout=1.0)


def test_a_taken_port_is_reported_before_starting_a_jvm(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalKafkaError, match=f"port {port} .* already in use"):
            LocalKafka(port=port, controller_port=free_port(), data_dir=tmp_path / "kafka").start()
        with pytest.raises(LocalRedisError, match=f"port {port} .* already in use"):
            LocalRedis(port=port, data_dir=tmp_path / "redis").start()


def test_redis_round_trips_a_key(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.set("streamrank:test:key", b"\x00\x01snapshot")
        assert client.get("streamrank:test:key") == b"\x00\x01snapshot"
    finally:
        client.close()


def test_redis_url_fixture_starts_from_an_empty_database(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


def test_local_redis_restarts_on_the_same_port(tmp_path: Path) -> None:
    with LocalRedis(port=free_port(), data_dir=tmp_path) as server:
        first_pid = server.pid
        server.restart()

        assert server.is_running()
        assert server.pid != first_pid
        assert redis_reachable(server.url, timeout=2.0)
        client = redis.Redis.from_url(server.url)
        try:
            assert client.set("k", "v") and client.get("k") == b"v"
        finally:
            client.close()
    assert not server.is_running()
    assert not redis_reachable(server.url, timeout=0.5)


def test_ensure_services_reuses_reachable_services(
    kafka: LocalKafka | ExternalKafka, redis_server: LocalRedis | ExternalRedis, tmp_path: Path
) -> None:
    with ensure_services(kafka.bootstrap_servers, redis_server.url, tmp_path) as services:
        assert services.kafka is None and services.redis is None
        assert services.kafka_bootstrap_servers == kafka.bootstrap_servers
        assert services.redis_url == redis_server.url
    assert kafka_reachable(kafka.bootstrap_servers, timeout=5.0)  # reused, so left running
    assert redis_reachable(redis_server.url, timeout=2.0)


def test_ensure_services_starts_what_does_not_answer(kafka: LocalKafka | ExternalKafka, tmp_path: Path) -> None:
    nobody = f"redis://127.0.0.1:{free_port()}/0"

    with ensure_services(kafka.bootstrap_servers, nobody, tmp_path) as services:
        assert services.kafka is None
        assert services.redis is not None and services.redis.is_running()
        assert services.redis_url != nobody and redis_reachable(services.redis_url, timeout=2.0)
    assert not services.redis.is_running()


def test_settings_env_names_fresh_topics_and_keys(settings_env: dict[str, str], topic_prefix: str) -> None:
    assert settings_env["STREAMRANK_TOPIC_PREFIX"] == topic_prefix
    assert settings_env["STREAMRANK_REDIS_PREFIX"] == topic_prefix.rstrip(".") + ":"
    assert kafka_reachable(settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"], timeout=5.0)
    assert redis_reachable(settings_env["STREAMRANK_REDIS_URL"], timeout=2.0)


def test_ensure_jars_fills_a_fresh_folder_in_one_step(tmp_path: Path) -> None:
    jars = tmp_path / "jars"
    broker = LocalKafka(jars_dir=jars)

    assert broker.ensure_jars() == jars  # Maven, from ~/.m2 after the first time

    assert list(jars.glob("kafka_2.13-*.jar")) and list(jars.glob("kafka-clients-*.jar"))
    assert [path.name for path in tmp_path.iterdir()] == ["jars"]  # no partial folder left behind


def test_missing_maven_is_named_with_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(LocalKafkaError, match="apt-get install -y maven"):
        LocalKafka(jars_dir=tmp_path / "jars").ensure_jars()
