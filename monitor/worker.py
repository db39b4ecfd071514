"""Wire the monitor into the worker: the learner's hook, a tick timer, the event counters.

:func:`attach_monitor` is all ``streamrank worker`` (:mod:`streams.worker`) calls. Every worker adds its event and
dead-letter counts to the shared totals in Redis; the worker that owns the learner also
takes each update's lists with the logits the trainer scored them with before learning
them (:meth:`LearnerMonitor.on_learned`, hooked into the learner's
:class:`~learner.log_learner.LogLearner`) and writes one point per
``STREAMRANK_MONITOR_INTERVAL_S``.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
import redis.asyncio as aioredis

from learner.log_learner import LogLearner
from learner.publisher import SnapshotPublisher
from learner.registry import ModelRegistry
from learner.store import SnapshotStore
from learner.trainer import Learned, Trainer
from monitor.alarm import AlarmPolicy
from monitor.lag import ConsumerLag
from monitor.online import LearnerMonitor
from monitor.series import SeriesReader, SeriesWriter
from monitor.settings import MonitorSettings
from ops.security import kafka_python_options, redis_options
from ops.settings import WorkerSettings
from streams.topics import Topics

__all__ = ["attach_monitor"]

log = logging.getLogger("streamrank.monitor")


def attach_monitor(app: faust.App, settings: WorkerSettings) -> LearnerMonitor:
    """Create the monitor for the worker app built by :func:`streams.app.build_app`, hook
    it into its learner and register its timer; returns it."""
    parts: dict[str, Any] = app.streamrank  # type: ignore[attr-defined]
    trainer: Trainer = parts["trainer"]
    publisher: SnapshotPublisher = parts["publisher"]
    stats = parts["stats"]
    learner = parts.get("learner")
    app_id = settings.app_id or f"{settings.topic_prefix}worker"
    redis = aioredis.Redis.from_url(settings.redis_url, **redis_options(settings))
    store = SnapshotStore(redis, settings.redis_prefix, settings.snapshot_keep)
    ms = MonitorSettings()
    topics = Topics(settings.topic_prefix)
    writer = SeriesWriter(redis, settings.redis_prefix, max_points=ms.monitor_keep_points)
    reader = SeriesReader(redis, settings.redis_prefix)
    events_lag = ConsumerLag(settings.kafka_bootstrap_servers, app_id,
                             [topics.items, topics.impressions, topics.interactions],
                             **kafka_python_options(settings))
    learner_lag = ConsumerLag(settings.kafka_bootstrap_servers, f"{app_id}-learner",
                              [topics.examples], **kafka_python_options(settings))

    def lag() -> dict[str, float]:
        return {**events_lag.read(), **learner_lag.read()}

    monitor = LearnerMonitor(
        trainer, store, ModelRegistry(redis, settings.redis_prefix, ms.alarm_keep_good), writer,
        policy=AlarmPolicy(max_drop=ms.alarm_max_drop, min_lists=ms.alarm_min_lists,
                           confirm=ms.alarm_confirm, window=ms.monitor_window,
                           keep=ms.alarm_keep_good),
        window=ms.monitor_window, alarm_enabled=ms.alarm_enabled,
        good_every_s=ms.alarm_good_every_s, psi_reference=ms.monitor_psi_reference,
        latest_snapshot=lambda: publisher.latest, lag=lag, counters=reader.counters)
    log_learner = getattr(learner, "learner", None)
    if isinstance(log_learner, LogLearner):
        log_learner.on_learned = monitor.on_learned
    else:  # a learn agent that calls the trainer directly: take each batch's report
        learn_batch = trainer.learn_batch

        def reported_learn_batch(records: Any) -> list[Learned]:
            learned = learn_batch(records)
            try:
                monitor.on_learned(learned)
            except Exception:  # the monitor must never stop the learner
                log.exception("monitor: could not take a learned batch")
            return learned

        trainer.learn_batch = reported_learn_batch  # type: ignore[method-assign]
    sent = {"impressions": 0, "interactions": 0, "items": 0, "dead_letters": 0}

    @app.timer(interval=ms.monitor_interval_s)
    async def monitor_tick() -> None:
        try:
            now = {k: int(getattr(stats, k)) for k in sent}
            await writer.add_counts({k: now[k] - sent[k] for k in sent})
            sent.update(now)
            if getattr(learner, "owned", True) and trainer.examples + trainer.shown > 0:
                await monitor.tick()
        except Exception:  # the monitor must never stop the worker
            log.exception("monitor: the tick failed; trying again at the next one")

    @app.on_before_shutdown.connect
    async def close_monitor_clients(app: faust.App, **_: Any) -> None:
        events_lag.close()
        learner_lag.close()
        await redis.aclose()

    return monitor
