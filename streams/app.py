"""The Faust application: catalog, join, history and the learner, as stream agents.

:func:`build_app` wires one :class:`faust.App` from :class:`~ops.settings.WorkerSettings`:

* ``catalog`` agent (``items`` topic): upserts the item table and mirrors it to Redis.
* ``events`` agent (``impressions`` + ``interactions``, co-partitioned by ``user_id``):
  keeps each user's and session's state (recent items, decayed affinities), computes
  each list's features when its impression arrives, joins clicks, add-to-carts and
  purchases to their list by ``impression_id`` and emits training records to ``examples``.
* ``learn`` task: the learner's own consumer of ``examples`` (one partition,
  :mod:`streams.learning`): batches cut at fixed offsets, re-sent records skipped, the
  state checkpointed in Redis with its offset, so every record counts once across crashes.

The logic lives in :class:`~streams.pipeline.Pipeline`; the agents decode, call it, and
carry out its effects (mirror state to Redis, send training records).
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
import orjson
import redis.asyncio as aioredis
from faust.types import EventT, StreamT

from learner.catalog import ItemCache
from learner.checkpoint import CheckpointStore
from learner.log_learner import LogLearner
from learner.publisher import SnapshotPublisher
from learner.stats import ItemStats, stats_of
from learner.store import SnapshotStore
from learner.trainer import Trainer
from ops.security import faust_broker_options, redis_options
from ops.settings import WorkerSettings
from streams.deadletter import dead_letter_value
from streams.history import RedisMirror
from streams.learning import ExamplesLearner
from streams.pipeline import Effects, Pipeline
from streams.schemas import (
    ImpressionEvent,
    InteractionEvent,
    InvalidEvent,
    ItemEvent,
    decode_event,
)
from streams.topics import Topics
from streams.writeback import DELETED, WriteBack

__all__ = ["WorkerStats", "build_app"]

log = logging.getLogger("streamrank.worker")


class _StatsFollower:
    """The item counters of the snapshot being served, for the worker's features.

    The worker that runs the learner has them from its own last publish; any other
    worker loads them from Redis when the served version moves on.
    """

    def __init__(self, store: SnapshotStore, publisher: SnapshotPublisher) -> None:
        self.store = store
        self.publisher = publisher
        self._loaded: tuple[int, ItemStats | None] | None = None

    def stats(self) -> ItemStats | None:
        """Counters of the newest snapshot this worker knows."""
        latest = self.publisher.latest
        if latest is not None and (self._loaded is None or latest.version >= self._loaded[0]):
            return stats_of(latest.arrays, latest.meta)
        return self._loaded[1] if self._loaded else None

    async def poll(self) -> None:
        """Load the served snapshot's counters when another worker published it."""
        version = await self.store.current_version()
        known = max(self.publisher.last_version or 0, self._loaded[0] if self._loaded else 0)
        if version is not None and version > known:
            snap = await self.store.load_current()
            if snap is not None:
                self._loaded = (snap.version, stats_of(snap.arrays, snap.meta))


@dataclass
class WorkerStats:
    """Counters of what the worker has done (read by logs and tests)."""

    items: int = 0
    impressions: int = 0
    interactions: int = 0
    dead_letters: int = 0
    dead_letters_failed: int = 0
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
        producer_linger=settings.producer_linger_ms / 1000,
        producer_max_batch_size=settings.producer_batch_bytes,
        key_serializer="raw",
        value_serializer="raw",
        **faust_broker_options(settings),
    )
    stats = WorkerStats()
    redis = aioredis.Redis.from_url(settings.redis_url, **redis_options(settings))
    mirror = RedisMirror(redis, settings.redis_prefix)
    store = SnapshotStore(redis, settings.redis_prefix, settings.snapshot_keep)
    trainer = Trainer(bits=settings.hash_bits, alpha=settings.ftrl_alpha, beta=settings.ftrl_beta,
                      l1=settings.ftrl_l1, l2=settings.ftrl_l2,
                      position_bias=settings.position_bias, dense=settings.dense)
    publisher = SnapshotPublisher(trainer, store, interval_ms=settings.snapshot_interval_ms)
    follower = _StatsFollower(store, publisher)

    counts = partitions or {}
    n_items = counts.get(topics.items, settings.topic_partitions)
    n_events = counts.get(topics.impressions, settings.topic_partitions)
    items_topic = app.topic(topics.items, partitions=n_items)
    events_topic = app.topic(topics.impressions, topics.interactions, partitions=n_events)
    dead_letter = app.topic(topics.dead_letter)

    def table(name: str, n: int) -> faust.Table:
        return app.Table(name, default=None, partitions=n, key_type=str)

    catalog = table("catalog", n_items)
    # the events agent's tables, written once per batch (write_changelogs), with the
    # kind they are mirrored to Redis as (the join's tables are not)
    impressions, pending, users, sessions = (WriteBack(table(name, n_events)) for name in (
        "impressions", "pending", "user-state", "session-state"))
    batch_tables = ((impressions, None), (pending, None), (users, "user"),
                    (sessions, "session"))
    pipeline = Pipeline(
        bits=settings.hash_bits, items=ItemCache(fallback=catalog.get),
        impressions=impressions, pending=pending, users=users, sessions=sessions,
        stats=follower.stats, history_length=settings.history_length,
        click_model=settings.click_model)
    app.streamrank = {"stats": stats, "trainer": trainer,  # type: ignore[attr-defined]
                      "publisher": publisher, "pipeline": pipeline}

    async def reject(event: EventT, reason: str) -> None:
        msg = event.message
        log.warning("dead-letter %s/%s/%s: %s", msg.topic, msg.partition, msg.offset, reason)
        try:
            await dead_letter.send(key=msg.key, value=dead_letter_value(
                msg.topic, msg.partition, msg.offset, reason, msg.value))
            stats.dead_letters += 1
        except Exception:  # the stream goes on; the loss is logged and counted
            stats.dead_letters_failed += 1
            log.exception("could not send the dead letter of %s/%s/%s", msg.topic,
                          msg.partition, msg.offset)

    async def carry_out(fx: Effects) -> None:
        mirror.stage(fx.states, fx.item)
        send, topic = app.producer.send, topics.examples  # as in write_changelogs
        for ex in fx.examples:
            await send(topic, None, ex.to_json(), None, None, None)
            stats.examples_emitted += 1

    def source(event: EventT) -> str:
        m = event.message
        return f"{m.topic}/{m.partition}/{m.offset}"

    @app.agent(items_topic, name="catalog")
    async def catalog_agent(stream: StreamT) -> None:
        async for event in stream.events():
            try:
                item = decode_event(ItemEvent, event.value)
                fx = pipeline.on_item(item, ts=_event_ts(event))
                if item.deleted:
                    catalog.pop(item.item_id, None)
                else:
                    catalog[item.item_id] = fx.item[1] if fx.item else None
                await carry_out(fx)
                stats.items += 1
            except InvalidEvent as exc:
                await reject(event, str(exc))
            except Exception as exc:  # never let one record stop the stream
                log.exception("catalog: unexpected error")
                await reject(event, f"internal error: {type(exc).__name__}: {exc}")

    async def write_changelogs() -> None:
        """Each key the batch changed: into its table's store, and to its changelog at
        the partition of the last record that changed it (what ``table[key] = value``
        does, but once per batch); a user's or session's state is staged for Redis too,
        with the same bytes. The records go to the producer directly: Faust's buffer for
        table writes hands them over one event-loop turn at a time. Faust flushes the
        producer before it commits the batch's offsets."""
        send = app.producer.send
        for held, kind in batch_tables:
            t = held.table
            topic = t.changelog_topic.get_topic_name()
            for key, value, partition in held.take():
                if value is DELETED:
                    t.data.pop(key, None)
                    payload = None
                else:
                    t.data[key] = value
                    payload = orjson.dumps(value)
                # keys and values in JSON: the tables' codec, which reads them back
                await send(topic, orjson.dumps(key), payload, partition, None, None)
                if kind is not None:
                    mirror.stage_encoded(kind, key, payload)

    def apply(event: EventT) -> Effects:
        for held, _ in batch_tables:  # the changelog partition of what this record writes
            held.partition = event.message.partition
        if event.message.topic == topics.impressions:
            imp = decode_event(ImpressionEvent, event.value)
            fx = pipeline.on_impression(imp, ts=_event_ts(event), source=source(event))
            stats.impressions += 1
        else:
            ev = decode_event(InteractionEvent, event.value)
            fx = pipeline.on_interaction(ev, ts=_event_ts(event), source=source(event))
            stats.interactions += 1
        return fx

    @app.agent(events_topic, name="events")
    async def events_agent(stream: StreamT) -> None:
        # A batch is applied in memory; each changed key is then written once to its
        # changelog and to Redis (write_changelogs). Faust acks the batch's records after
        # this body, and flushes its producer before it commits them.
        async for batch in stream.take_events(settings.event_batch,
                                              within=settings.event_batch_ms / 1000):
            examples = []
            for event in batch:
                try:
                    fx = apply(event)
                except InvalidEvent as exc:
                    await reject(event, str(exc))
                    continue
                except Exception as exc:
                    log.exception("events: unexpected error")
                    await reject(event, f"internal error: {type(exc).__name__}: {exc}")
                    continue
                examples.extend(fx.examples)  # its states are in the write-back tables
            await write_changelogs()
            await carry_out(Effects(examples=examples))

    learner = ExamplesLearner(
        settings, learner=LogLearner(trainer, batch_size=settings.learn_batch_size,
                                     window=settings.dedupe_window, topic=topics.examples),
        checkpoints=CheckpointStore(redis, settings.redis_prefix), publisher=publisher,
        topic=topics.examples, group_id=f"{app_id}-learner")
    app.streamrank["learner"] = learner  # type: ignore[attr-defined]

    @app.task
    async def learn() -> None:
        try:
            await learner.run()
        except Exception as exc:  # a checkpoint that does not fit: stop the worker
            log.critical("the learner stopped: %s", exc)
            await app.crash(exc)

    @app.timer(interval=max(settings.snapshot_interval_ms / 1000 / 2, 0.01))
    async def publish_snapshot() -> None:
        try:
            if await publisher.maybe_publish():
                log.info("published snapshot v%s (%d examples, %.1f ms)",
                         publisher.last_version, trainer.examples,
                         publisher.last_publish_ms or 0.0)
        except Exception:
            log.exception("could not publish a snapshot; will retry")

    @app.timer(interval=1.0)
    async def follow_snapshots() -> None:
        try:
            await follower.poll()
        except Exception as exc:
            log.warning("could not read the served snapshot: %s", exc)

    @app.timer(interval=10.0)
    async def report() -> None:
        stats.examples_applied = trainer.examples
        log.info("worker: %s", stats)

    @app.task
    async def mirror_state() -> None:
        await mirror.run()

    @app.on_before_shutdown.connect
    async def close_redis(app: faust.App, **_: Any) -> None:
        try:
            await mirror.flush()  # the last states the scorer should see
        except Exception as exc:
            log.warning("could not mirror the last %d keys: %s", mirror.staged, exc)
        try:
            await learner.stop()  # its last checkpoint goes to Redis first
        finally:
            await redis.aclose()

    return app
