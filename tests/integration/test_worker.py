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
