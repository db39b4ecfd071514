"""The Faust application: catalog, join, history and the learner, as stream agents.

:func:`build_app` wires one :class:`faust.App` from :class:`~ops.settings.WorkerSettings`:

* ``catalog`` agent (``items`` topic): upserts the item table and mirrors it to Redis.
* ``events`` agent (``impressions`` + ``interactions``, co-partitioned by ``user_id``):
  keeps each user's and session's recent history, joins clicks, add-to-carts and
  purchases to their list by ``impression_id`` and emits labelled lists to ``examples``.
* ``learn`` agent (``examples``, one partition): applies them to the model in batches.
* a timer publishes a snapshot when there were updates, at most every
  ``snapshot_interval_ms``.

A record that does not follow the contract goes to the dead-letter topic with the
reason; so does one whose processing fails unexpectedly. Neither stops a stream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import faust
import redis.asyncio as aioredis
from faust.types import EventT, StreamT

from learner.publisher import SnapshotPublisher
from learner.store import SnapshotStore
from learner.trainer import Trainer
from ops.settings import WorkerSettings
from streams.deadletter import dead_letter_value
from streams.examples import LabeledList
from streams.history import RedisMirror, append_bounded
from streams.join import ImpressionJoin
from streams.schemas import ImpressionEvent, InteractionEvent, InvalidEvent, ItemEvent, decode_event
from streams.topics import Topics

__all__ = ["WorkerStats", "build_app"]

log = logging.getLogger("streamrank.worker")


@dataclass
class WorkerStats:
    """Counters of what the worker has done (read by logs and tests)."""

    items: int = 0
    impressions: int = 0
    interactions: int = 0
    dead_letters: int = 0
    examples_emitted: int = 0
    examples_applied: int = 0


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def _event_ts(event: EventT) -> int:
    return int(float(event.message.timestamp) * 1000)


def build_app(settings: WorkerSettings, partitions: dict[str, int] | None = None) -> faust.App:
    """The worker's Faust app, with every agent, table and timer registered.

    ``partitions`` gives the real partition count of existing topics (from
    :func:`~streams.admin.ensure_topics`): tables must match their source topic.
    """
    topics = Topics(settings.topic_prefix)
    app_id = settings.app_id or f"{settings.topic_prefix}worker"
    app = faust.App(
        app_id,
        datadir=f"{settings.data_dir}/{app_id}",
        broker=_broker_urls(settings.kafka_bootstrap_servers),
        store="memory://",
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        web_enabled=False,
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
    )
    stats = WorkerStats()
    redis = aioredis.Redis.from_url(settings.redis_url)
    mirror = RedisMirror(redis, settings.redis_prefix, settings.history_length)
    trainer = Trainer(bits=settings.hash_bits, alpha=settings.ftrl_alpha, beta=settings.ftrl_beta,
                      l1=settings.ftrl_l1, l2=settings.ftrl_l2)
    publisher = SnapshotPublisher(trainer, SnapshotStore(redis, settings.redis_prefix,
                                                         settings.snapshot_keep),
                                  interval_ms=settings.snapshot_interval_ms)
    app.streamrank = {"stats": stats, "trainer": trainer, "publisher": publisher}  # type: ignore[attr-defined]

    counts = partitions or {}
    n_items = counts.get(topics.items, settings.topic_partitions)
    n_events = counts.get(topics.impressions, settings.topic_partitions)
    items_topic = app.topic(topics.items, partitions=n_items)
    events_topic = app.topic(topics.impressions, topics.interactions, partitions=n_events)
    examples_topic = app.topic(topics.examples, partitions=1)
    dead_letter = app.topic(topics.dead_letter)

    def table(name: str, n: int) -> faust.Table:
        return app.Table(name, default=None, partitions=n, key_type=str)

    catalog = table("catalog", n_items)
    join = ImpressionJoin(impressions=table("impressions", n_events),
                          pending=table("pending", n_events))
    user_history = table("user-history", n_events)
    session_history = table("session-history", n_events)

    async def reject(event: EventT, reason: str) -> None:
        msg = event.message
        stats.dead_letters += 1
        log.warning("dead-letter %s/%s/%s: %s", msg.topic, msg.partition, msg.offset, reason)
        await dead_letter.send(key=msg.key, value=dead_letter_value(
            msg.topic, msg.partition, msg.offset, reason, msg.value))

    @app.agent(items_topic, name="catalog")
    async def catalog_agent(stream: StreamT) -> None:
        async for event in stream.events():
            try:
                item = decode_event(ItemEvent, event.value)
                data = item.model_dump(exclude_none=True)
                data.setdefault("ts", _event_ts(event))
                if item.deleted:
                    catalog.pop(item.item_id, None)
                    await mirror.upsert_item(item.item_id, None)
                else:
                    catalog[item.item_id] = data
                    await mirror.upsert_item(item.item_id, data)
                stats.items += 1
            except InvalidEvent as exc:
                await reject(event, str(exc))
            except Exception as exc:  # never let one record stop the stream
                log.exception("catalog: unexpected error")
                await reject(event, f"internal error: {type(exc).__name__}: {exc}")

    async def emit(examples: list[LabeledList]) -> None:
        for ex in examples:
            await examples_topic.send(value=ex.to_json())
            stats.examples_emitted += 1

    async def on_impression(event: EventT) -> None:
        imp = decode_event(ImpressionEvent, event.value)
        stats.impressions += 1
        await emit(join.on_impression(imp, ts=imp.ts or _event_ts(event)))

    async def on_interaction(event: EventT) -> None:
        ev = decode_event(InteractionEvent, event.value)
        ts = ev.ts or _event_ts(event)
        entry: list[Any] = [ev.type, ev.item_id, ts]
        append_bounded(user_history, ev.user_id, entry, settings.history_length)
        if ev.session_id:
            append_bounded(session_history, ev.session_id, entry, settings.history_length)
        await mirror.record_interaction(ev.user_id, ev.session_id, entry)
        stats.interactions += 1
        m = event.message
        await emit(join.on_interaction(ev, source=f"{m.topic}/{m.partition}/{m.offset}"))

    @app.agent(events_topic, name="events")
    async def events_agent(stream: StreamT) -> None:
        async for event in stream.events():
            try:
                if event.message.topic == topics.impressions:
                    await on_impression(event)
                else:
                    await on_interaction(event)
            except InvalidEvent as exc:
                await reject(event, str(exc))
            except Exception as exc:
                log.exception("events: unexpected error")
                await reject(event, f"internal error: {type(exc).__name__}: {exc}")

    @app.agent(examples_topic, name="learn")
    async def learn_agent(stream: StreamT) -> None:
        async for batch in stream.take(512, within=0.02):
            for raw in batch:
                try:
                    trainer.learn_list(LabeledList.from_json(raw))
                    stats.examples_applied += 1
                except Exception:
                    log.exception("learn: could not apply an example")
            await publisher.maybe_publish()

    @app.timer(interval=max(settings.snapshot_interval_ms / 1000 / 2, 0.01))
    async def publish_snapshot() -> None:
        try:
            if await publisher.maybe_publish():
                log.info("published snapshot v%s (%d examples, %.1f ms)",
                         publisher.last_version, trainer.examples,
                         publisher.last_publish_ms or 0.0)
        except Exception:
            log.exception("could not publish a snapshot; will retry")

    @app.timer(interval=10.0)
    async def report() -> None:
        log.info("worker: %s", stats)

    @app.on_before_shutdown.connect
    async def close_redis(app: faust.App, **_: Any) -> None:
        await redis.aclose()

    return app
