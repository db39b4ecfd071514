"""The learner's consumer of the examples topic: it keeps its own position, in its checkpoint.

Faust commits the offsets of what its agents have processed, independently of anything
the learner keeps in memory, so a crash between a commit and the next snapshot loses
updates (or, the other way round, applies them twice). The learner therefore reads the
examples topic with its own consumer (aiokafka, consumer group ``{app_id}-learner``, so
that one worker of a deployment learns) and keeps its position where its state is:

* when the partition is assigned, it loads the checkpoint from Redis
  (:class:`~learner.checkpoint.CheckpointStore`), restores the trainer from it and seeks
  to the checkpoint's ``next_offset`` (the log's start when there is none);
* it hands each record to a :class:`~learner.log_learner.LogLearner` (batches cut at
  fixed offsets, duplicates skipped), applies the open batch provisionally when it has
  caught up with the log, at most every ``flush_interval_ms``, publishes snapshots, and
  writes a checkpoint every ``checkpoint_interval_ms`` when it has moved on;
* when the partition is revoked, and when the worker stops, it writes a last checkpoint.

The learner never relies on where the consumer happens to start: it seeks on assignment,
drops (and fetches again) records fetched across an assignment, and ignores a record
below its position. The offsets it commits to Kafka are its saved checkpoints' (never
ahead of them), for the lag tools only.

A record whose ``ts`` is missing gets the Kafka timestamp of its examples record (not the
time it is learned), so the item counters' decay is the same in every replay.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from learner.checkpoint import CheckpointError, CheckpointStore
from learner.log_learner import LogLearner
from learner.publisher import SnapshotPublisher
from ops.security import aiokafka_options
from ops.settings import WorkerSettings
from streams.examples import LabeledList

__all__ = ["ExamplesLearner", "decode_record"]

log = logging.getLogger("streamrank.learner")

def decode_record(msg: ConsumerRecord[Any, Any]) -> LabeledList | None:
    """The training record of an examples-topic message; ``None`` if it cannot be decoded.

    A record without ``ts`` gets the message's Kafka timestamp (deterministic on replay).
    """
    try:
        rec = LabeledList.from_json(msg.value)
    except Exception as exc:
        log.warning("learn: an undecodable training record at offset %s: %s", msg.offset, exc)
        return None
    if rec.ts is None and msg.timestamp is not None and msg.timestamp >= 0:
        rec = dataclasses.replace(rec, ts=int(msg.timestamp))
    return rec


class ExamplesLearner:
    """Runs a :class:`LogLearner` over the examples topic with checkpoints in Redis.

    Parameters
    ----------
    settings
        Broker address, security, session timeout, batch and checkpoint settings.
    learner
        The offset-aligned learner (its trainer is the one the publisher snapshots).
    checkpoints
        Where checkpoints are kept.
    publisher
        Publishes snapshots of the trainer.
    topic
        The examples topic (one partition).
    group_id
        The learner's consumer group.

    What each update learned goes to the learner's hook
    (:attr:`LogLearner.on_learned <learner.log_learner.LogLearner.on_learned>`, the
    monitor's progressive validation), with the logits the trainer scored each list with.
    """

    def __init__(self, settings: WorkerSettings, *, learner: LogLearner,
                 checkpoints: CheckpointStore, publisher: SnapshotPublisher, topic: str,
                 group_id: str) -> None:
        self.settings = settings
        self.learner = learner
        self.checkpoints = checkpoints
        self.publisher = publisher
        self.tp = TopicPartition(topic, 0)
        self.group_id = group_id
        self.checkpoint_interval_s = settings.checkpoint_interval_ms / 1000
        # a provisional update at most every half snapshot interval: snapshots are no
        # fresher than that anyway
        self.flush_interval_s = settings.snapshot_interval_ms / 2000
        self.owned = False
        #: Counts assignments: records fetched across one are dropped and fetched again.
        self.generation = 0
        self.checkpoints_written = 0
        self._fatal: BaseException | None = None
        self._retry_at = 0.0
        self._saved_offset: int | None = None
        self._committed: int | None = None
        self._last_checkpoint = time.monotonic()
        self._last_flush = 0.0
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._done = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None

    def _make_consumer(self) -> AIOKafkaConsumer:
        s = self.settings
        return AIOKafkaConsumer(
            bootstrap_servers=s.kafka_bootstrap_servers.split(","), group_id=self.group_id,
            client_id=f"{self.group_id}-{id(self):x}", enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
            **aiokafka_options(s))

    async def run(self) -> None:
        """Consume and learn until :meth:`stop`; a last checkpoint on the way out."""
        consumer = self._consumer = self._make_consumer()
        consumer.subscribe([self.tp.topic], listener=_Rebalance(self))
        await consumer.start()
        try:
            while not self._stopping.is_set():
                generation = self.generation
                try:
                    got = await consumer.getmany(timeout_ms=50,
                                                 max_records=self.learner.batch_size)
                except KafkaError as exc:  # the client retries on its own; so do we
                    log.warning("learn: could not fetch from %s: %r", self.tp.topic, exc)
                    await asyncio.sleep(1.0)
                    continue
                async with self._lock:
                    if (self._retry_at and not self.owned
                            and self.tp in consumer.assignment()
                            and time.monotonic() >= self._retry_at):
                        await self._resume(consumer)  # the listener's attempt failed
                    msgs = got.get(self.tp, [])
                    if self.owned and generation == self.generation:
                        self._take(consumer, msgs)
                    elif self.owned and msgs:
                        # fetched across a (re)assignment: they may start anywhere, so
                        # fetch again from where the learner is
                        consumer.seek(self.tp, self.learner.position or 0)
                try:
                    await self.publisher.maybe_publish()
                except Exception:
                    log.exception("learn: could not publish a snapshot; will retry")
                if time.monotonic() - self._last_checkpoint >= self.checkpoint_interval_s:
                    async with self._lock:
                        await self._checkpoint()
                    # never under the lock: a commit waits for a rebalance to finish, and
                    # the rebalance for the listener, which takes the lock
                    await self._commit_position(consumer)
            if self._fatal is not None:
                raise self._fatal
        finally:
            try:
                async with self._lock:
                    await self._checkpoint()
            finally:
                await consumer.stop()
                self._done.set()

    def _take(self, consumer: AIOKafkaConsumer, msgs: list[ConsumerRecord[Any, Any]]) -> None:
        """Learn from one fetch (synchronous: nothing else runs on the loop meanwhile)."""
        learner = self.learner
        if msgs:
            for m in msgs:
                learner.offer(m.offset, decode_record(m))
        end = consumer.last_stable_offset(self.tp)
        caught_up = end is None or learner.position is None or learner.position >= end
        now = time.monotonic()
        if (learner.pending and caught_up and now - self._last_flush >= self.flush_interval_s
                and learner.apply_pending()):
            self._last_flush = now

    async def _checkpoint(self) -> None:
        """Write a checkpoint when the committed state has moved on (call with the lock)."""
        self._last_checkpoint = time.monotonic()
        if not self.owned:
            return
        ckpt = self.learner.checkpoint()
        if ckpt is None or ckpt.next_offset == self._saved_offset:
            return
        try:
            saved = await self.checkpoints.save(ckpt)
        except Exception as exc:  # Redis is away: the next interval tries again
            log.warning("could not write the learner checkpoint: %s", exc)
            return
        if saved:
            self._saved_offset = ckpt.next_offset
            self.checkpoints_written += 1
            learner = self.learner
            log.info("learner: checkpoint at offset %d (%d examples; since start: %d "
                     "duplicates skipped, %d provisional updates, %d batches redone)",
                     ckpt.next_offset, ckpt.examples, learner.duplicates,
                     learner.provisional_updates, learner.redone)
        else:
            log.warning("a checkpoint further than offset %d is already stored: another "
                        "learner owns the examples topic", ckpt.next_offset)

    async def _commit_position(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the saved checkpoint's offset to Kafka, for the lag tools only; best
        effort. Never a later offset: a consumer that starts from the committed offset
        before the learner's seek takes effect must not start after the checkpoint."""
        position = self._saved_offset
        if not self.owned or position is None or position == self._committed:
            return
        try:
            await asyncio.wait_for(consumer.commit({self.tp: position}), timeout=5.0)
            self._committed = position
        except Exception as exc:
            log.info("could not commit the learner's position (monitoring only): %r", exc)

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """The partition is ours: restore the checkpoint and seek to it."""
        if self.tp not in assigned or self._consumer is None:
            return
        async with self._lock:
            await self._resume(self._consumer)

    async def _resume(self, consumer: AIOKafkaConsumer) -> None:
        """Restore the checkpoint and seek to it (call with the lock). A checkpoint that
        does not fit stops the learner; an unreachable Redis is tried again."""
        self.generation += 1
        self._retry_at = 0.0
        try:
            ckpt = await self.checkpoints.load()
            self.learner.restore(ckpt, key=self.checkpoints.key)
        except CheckpointError as exc:
            log.critical("learn: %s", exc)
            self._fatal = exc
            self._stopping.set()
            return
        except Exception as exc:
            log.warning("learn: could not load the checkpoint (%s); will try again", exc)
            self._retry_at = time.monotonic() + 1.0
            return
        # offset 0 is before the log's start once retention deleted records: the
        # consumer then resets to the start ("earliest")
        consumer.seek(self.tp, ckpt.next_offset if ckpt is not None else 0)
        self._saved_offset = ckpt.next_offset if ckpt is not None else None
        self.owned = True
        log.info("learner: %s assigned; resuming at offset %s (%d examples)", self.tp,
                 ckpt.next_offset if ckpt else "start", self.learner.trainer.examples)

    async def on_revoked(self, revoked: set[TopicPartition]) -> None:
        """The partition goes elsewhere: checkpoint, then stop learning."""
        if self.tp not in revoked or not self.owned or self._consumer is None:
            return
        async with self._lock:
            await self._checkpoint()
            self.owned = False
            self.generation += 1
            log.info("learner: %s revoked at offset %s", self.tp, self.learner.next_offset)

    async def stop(self, timeout: float = 30.0) -> None:
        """Ask :meth:`run` to finish (it writes a last checkpoint) and wait for it."""
        self._stopping.set()
        if self._consumer is not None:
            await asyncio.wait_for(self._done.wait(), timeout)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hands the group's assignment changes to the learner."""

    def __init__(self, owner: ExamplesLearner) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.on_assigned(assigned)
