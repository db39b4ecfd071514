"""Consumer lag from the broker's point of view: topic end offsets vs a group's commits.

:class:`LagProbe` asks the broker (kafka-python's ``KafkaAdminClient``) for the end
offset of every partition of some topics and for a consumer group's committed offsets on
them; the lag is their difference, summed over partitions. It observes the worker from
outside, as an operator's monitoring would, so it sees lag at the granularity of the
group's commits (Faust commits every 2.8 s, or every 10,000 events).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="(read|open)_text is deprecated",
                            category=DeprecationWarning)
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient, NewTopic, OffsetSpec
    from kafka.errors import KafkaError, TopicAlreadyExistsError

__all__ = ["LagProbe", "LagSample", "create_topics"]


@dataclass(frozen=True)
class LagSample:
    """One look at the topics: time, end offsets and committed offsets, summed."""

    t: float
    end: int
    committed: int

    @property
    def lag(self) -> int:
        """Events on the topics that the group has not committed yet."""
        return self.end - self.committed


def create_topics(bootstrap: str, names: Sequence[str], partitions: int) -> None:
    """Create topics with ``partitions`` partitions unless they exist."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamrank-bench")
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class LagProbe:
    """Samples end and committed offsets of ``topics`` for ``group``."""

    def __init__(self, bootstrap: str, group: str, topics: Sequence[str]) -> None:
        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="streamrank-bench")
        self.group = group
        self.topics = list(topics)
        self._partitions: list[TopicPartition] = []

    def wait_for_topics(self, timeout: float = 60.0) -> None:
        """Wait until every topic exists (and learn its partitions)."""
        deadline = time.monotonic() + timeout
        while True:
            if set(self.topics) <= set(self.admin.list_topics()):
                meta = self.admin.describe_topics(self.topics)
                parts = [TopicPartition(m.get("name", m.get("topic")), p["partition_index"]
                                        if "partition_index" in p else p["partition"])
                         for m in meta for p in (m["partitions"] or [])]
                if len(parts) >= len(self.topics):
                    self._partitions = parts
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics {self.topics} did not appear in {timeout:g} s")
            time.sleep(0.2)

    def sample(self, retry_s: float = 30.0) -> LagSample:
        """End offsets and the group's committed offsets, summed over the partitions.

        Retries what Kafka calls retriable (e.g. no group coordinator yet on a fresh
        broker) for up to ``retry_s`` seconds.
        """
        deadline = time.monotonic() + retry_s
        while True:
            try:
                return self._sample()
            except KafkaError as exc:
                if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _sample(self) -> LagSample:
        if not self._partitions:
            self.wait_for_topics()
        t = time.monotonic()
        ends = self.admin.list_partition_offsets({tp: OffsetSpec.LATEST
                                                  for tp in self._partitions})
        groups = self.admin.list_group_offsets({self.group: self._partitions})
        committed = groups.get(self.group, {})
        end = sum(int(v.offset) for v in ends.values())
        done = sum(max(int(v.offset), 0) for tp, v in committed.items()
                   if tp in set(self._partitions))
        return LagSample(t=t, end=end, committed=done)

    def close(self) -> None:
        """Release the admin client."""
        self.admin.close()
