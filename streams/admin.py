"""Create the deployment's topics before any stream subscribes to them.

Impressions and interactions are keyed by ``user_id`` and must have the same number of
partitions, so that a list and its clicks meet in the same worker; the internal
``examples`` topic has exactly one partition, so exactly one learner applies each example.
"""

from __future__ import annotations

import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.topics import Topics

__all__ = ["TopicLayoutError", "ensure_topics"]


class TopicLayoutError(RuntimeError):
    """Existing topics are laid out in a way the join cannot work with."""


def ensure_topics(bootstrap_servers: str, topics: Topics, partitions: int,
                  replication_factor: int = 1, **admin_options: object) -> dict[str, int]:
    """Create missing topics; return the partition count of each. Idempotent.

    ``admin_options`` go to :class:`kafka.admin.KafkaAdminClient`; pass
    ``**ops.security.kafka_python_options(settings)`` for a broker with SASL or TLS.
    """
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, client_id="streamrank-admin",
                             **admin_options)
    try:
        wanted = {topics.items: partitions, topics.impressions: partitions,
                  topics.interactions: partitions, topics.dead_letter: partitions,
                  topics.examples: 1}
        existing = set(admin.list_topics())
        new = [NewTopic(name, n, replication_factor) for name, n in wanted.items()
               if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass  # another worker created them first
        counts: dict[str, int] = {}
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:  # new topics' metadata takes a moment to spread
            counts = {m.get("name", m.get("topic")): len(m["partitions"] or [])
                      for m in admin.describe_topics(list(wanted))}
            if all(counts.get(name) for name in wanted):
                break
            time.sleep(0.1)
    finally:
        admin.close()
    if counts.get(topics.impressions) != counts.get(topics.interactions):
        raise TopicLayoutError(
            f"{topics.impressions} has {counts.get(topics.impressions)} partitions but "
            f"{topics.interactions} has {counts.get(topics.interactions)}: they must be equal "
            "so a list and its clicks meet in one worker; recreate one of them")
    if counts.get(topics.examples) != 1:
        raise TopicLayoutError(f"{topics.examples} must have exactly 1 partition "
                               f"(has {counts.get(topics.examples)}); recreate it")
    return counts
