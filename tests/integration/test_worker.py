"""The stream worker against a real broker and Redis: dead letters, the join, snapshots."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
from kafka import KafkaConsumer

from learner.features import RankContext
from learner.store import SnapshotStore
from serving.model import ServingModel
from streams.producer import EventProducer
from streams.topics import Topics
from tests.contract import bad_variants
from tests.helpers import wait_for
from ops.processes import worker_process

pytestmark = pytest.mark.integration

TOPIC_OF = {"item": "items", "impression": "impressions", "interaction": "interactions"}


def _load_snapshot(env: dict[str, str]):  # type: ignore[no-untyped-def]
    async def load():  # type: ignore[no-untyped-def]
        client = aioredis.Redis.from_url(env["STREAMRANK_REDIS_URL"])
        try:
            return await SnapshotStore(client, env["STREAMRANK_REDIS_PREFIX"]).load_current()
        finally:
            await client.aclose()

    return asyncio.run(load())


def test_every_bad_record_lands_in_the_dead_letter_topic_with_its_field(
        settings_env: dict[str, str], tmp_path: Path) -> None:
    topics = Topics(settings_env["STREAMRANK_TOPIC_PREFIX"])
    sent: dict[bytes, str] = {}  # payload -> the field its error must name
    with worker_process(settings_env, tmp_path / "worker.log") as worker:
        producer = EventProducer(settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                                 topics.prefix)
        for role, name in TOPIC_OF.items():
            topic = f"{topics.prefix}{name}"
            for field, _what, doc in bad_variants(role):
                raw = orjson.dumps(doc)
                sent[raw] = field
                producer.send_raw(topic, raw, key=b"k")
            for junk, field in ((b"\xff\xfe{", "payload"), (b"[1, 2]", "payload"),
                                (b'{"a": ' * 2000, "payload")):
                sent[junk + name.encode()] = field
                producer.send_raw(topic, junk + name.encode(), key=b"k")
        # a good record after the bad ones must still be processed
        producer.item({"item_id": "sku-ok"})
        producer.flush()

        consumer = KafkaConsumer(topics.dead_letter,
                                 bootstrap_servers=settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                                 auto_offset_reset="earliest", consumer_timeout_ms=500)
        records: list[dict] = []

        def all_dead_lettered() -> bool:
            records.extend(orjson.loads(m.value) for m in consumer)
            return len(records) >= len(sent)

        wait_for(all_dead_lettered, timeout=90, message=f"{len(sent)} dead-letter records")
        consumer.close()
        import redis

        r = redis.Redis.from_url(settings_env["STREAMRANK_REDIS_URL"])
        wait_for(lambda: r.exists(f"{settings_env['STREAMRANK_REDIS_PREFIX']}item:sku-ok"),
                 timeout=30, message="the good item after the bad ones")
        r.close()
        assert worker.alive(), worker.log_tail()
    assert len(records) == len(sent)
    for rec in records:
        assert set(rec) >= {"topic", "partition", "offset", "error", "payload"}
        payload = rec["payload"].encode() if "payload_encoding" not in rec else None
        if payload is None:
            import base64

            payload = base64.b64decode(rec["payload"])
        assert payload in sent, rec
        assert rec["error"].startswith(sent[payload]), (rec["error"], sent[payload])


def test_clicks_are_joined_learned_and_published(settings_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    prefix = settings_env["STREAMRANK_TOPIC_PREFIX"]
    items = [f"sku-{i}" for i in range(8)]
    with worker_process(settings_env, tmp_path / "worker.log") as worker:
        producer = EventProducer(settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"], prefix)
        for k in range(60):
            for user, favourite in (("u-1", "sku-6"), ("u-2", "sku-2")):
                imp = f"imp-{user}-{k}"
                click = {"type": "click", "user_id": user, "item_id": favourite,
                         "impression_id": imp}
                if k % 2:  # half the clicks arrive before their list: the join must wait
                    producer.interaction(click)
                producer.impression({"impression_id": imp, "user_id": user,
                                     "items": [{"item_id": i, "position": p + 1}
                                               for p, i in enumerate(items)]})
                if not k % 2:
                    producer.interaction(click)
        producer.flush()

        snap = wait_for(lambda: (s := _load_snapshot(settings_env)) and s.examples >= 120 and s,
                        timeout=90, message="a snapshot trained on all 120 clicks")
        assert worker.alive(), worker.log_tail()
    model = ServingModel(snap)
    assert items[model.rank_order(RankContext("u-1"), items)[0]] == "sku-6"
    assert items[model.rank_order(RankContext("u-2"), items)[0]] == "sku-2"
    assert snap.examples == 120


def test_a_new_worker_restores_states_and_waiting_clicks_from_the_changelogs(
        settings_env: dict[str, str], tmp_path: Path) -> None:
    """The events agent writes its tables' changelogs itself, once per batch: a worker
    with an empty local store must rebuild the user's history and a click still waiting
    for its list from them."""
    import redis

    prefix = settings_env["STREAMRANK_TOPIC_PREFIX"]
    topics = Topics(prefix)
    state_key = f"{settings_env['STREAMRANK_REDIS_PREFIX']}state:user:u-1"
    r = redis.Redis.from_url(settings_env["STREAMRANK_REDIS_URL"])
    producer = EventProducer(settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"], prefix)

    def recent() -> list[str]:
        raw = r.get(state_key)
        return [] if raw is None else [e[1] for e in orjson.loads(raw)["recent"]]

    items = [{"item_id": f"sku-{i}", "position": i + 1} for i in range(4)]
    try:
        with worker_process(settings_env, tmp_path / "a" / "worker.log") as first:
            producer.impression({"impression_id": "imp-1", "user_id": "u-1", "items": items})
            producer.interaction({"type": "click", "user_id": "u-1", "item_id": "sku-3",
                                  "impression_id": "imp-1"})
            # its list comes only after the restart: the click waits in `pending`
            producer.interaction({"type": "click", "user_id": "u-1", "item_id": "sku-2",
                                  "impression_id": "imp-late"})
            producer.flush()
            wait_for(lambda: recent() == ["sku-3", "sku-2"], timeout=90,
                     message="the first worker's state of u-1 in Redis")
            assert first.alive(), first.log_tail()
        r.delete(state_key)  # from here on, only the changelogs know u-1

        with worker_process(settings_env, tmp_path / "b" / "worker.log") as second:
            producer.interaction({"type": "click", "user_id": "u-1", "item_id": "sku-0"})
            producer.impression({"impression_id": "imp-late", "user_id": "u-1",
                                 "items": items})
            producer.flush()
            wait_for(lambda: recent() == ["sku-3", "sku-2", "sku-0"], timeout=90,
                     message="u-1's history restored and extended by the second worker")
            consumer = KafkaConsumer(topics.examples, auto_offset_reset="earliest",
                                     bootstrap_servers=settings_env[
                                         "STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                                     consumer_timeout_ms=1000)
            seen: list[dict[str, object]] = []
            try:
                wait_for(lambda: seen.extend(orjson.loads(m.value) for m in consumer) or any(
                    e["impression_id"] == "imp-late" and e["kind"] == "labeled"
                    for e in seen), timeout=60, message="the waiting click joined to imp-late")
            finally:
                consumer.close()
            assert second.alive(), second.log_tail()
    finally:
        producer.close()
        r.close()
    late = [e for e in seen if e["impression_id"] == "imp-late" and e["kind"] == "labeled"]
    assert len(late) == 1 and late[0]["labels"] == [0.0, 0.0, 1.0, 0.0]
