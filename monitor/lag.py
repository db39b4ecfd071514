"""Consumer lag of the worker's group: records on each topic not yet processed.

Lag is the broker's end offset minus the group's committed offset, summed over a
topic's partitions (a partition the group never committed counts from its start). It
is read with kafka-python's public admin API, in a thread (the calls block), at most
once per ``interval_s``; a failure keeps the last figures and is logged once.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any

__all__ = ["ConsumerLag"]

log = logging.getLogger(__name__)


class ConsumerLag:
    """Per-topic lag of one consumer group.

    Parameters
    ----------
    bootstrap_servers
        The Kafka cluster.
    group_id
        The worker's consumer group (its app id).
    topics
        Topics whose lag is reported.
    interval_s
        Least time between two reads of the broker.
    options
        kafka-python security options (:func:`ops.security.kafka_python_options`).
    """

    def __init__(self, bootstrap_servers: str, group_id: str, topics: list[str],
                 interval_s: float = 5.0, **options: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.topics = topics
        self.interval_s = interval_s
        self.options = options
        self.lag: dict[str, float] = {t: math.nan for t in topics}
        self._last = 0.0
        self._lock = threading.Lock()
        self._admin: Any = None
        self._consumer: Any = None
        self._failed = False

    def read(self) -> dict[str, float]:
        """The lag per topic, refreshed when ``interval_s`` has passed (blocking: call it
        from a thread)."""
        with self._lock:
            if time.monotonic() - self._last < self.interval_s:
                return dict(self.lag)
            self._last = time.monotonic()
            try:
                self.lag = self._read()
                self._failed = False
            except Exception as exc:  # the broker is away: keep the last figures
                if not self._failed:
                    log.warning("could not read the consumer lag: %s", exc)
                self._failed = True
                self.close()
            return dict(self.lag)

    def _read(self) -> dict[str, float]:
        from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

        if self._admin is None:
            self._admin = KafkaAdminClient(bootstrap_servers=self.bootstrap_servers,
                                           client_id=f"{self.group_id}-lag", **self.options)
            self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                           client_id=f"{self.group_id}-lag",
                                           enable_auto_commit=False, **self.options)
        if hasattr(self._admin, "list_group_offsets"):  # kafka-python 3
            committed = self._admin.list_group_offsets(self.group_id).get(self.group_id, {})
        else:
            committed = self._admin.list_consumer_group_offsets(self.group_id)
        out: dict[str, float] = {}
        for topic in self.topics:
            parts = self._consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in parts]
            if not tps:
                out[topic] = math.nan
                continue
            ends = self._consumer.end_offsets(tps)
            total = 0
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                total += max(int(ends.get(tp, 0)) - done, 0)
            out[topic] = float(total)
        return out

    def close(self) -> None:
        """Close the clients (they are made again at the next read)."""
        for client in (self._admin, self._consumer):
            if client is not None:
                try:
                    client.close()
                except Exception:  # closing a broken client: nothing more to do
                    pass
        self._admin = self._consumer = None
