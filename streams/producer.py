"""The producer SDK: a small typed kafka-python client for event producers.

Events are validated against the contract before they leave the process (a bad event
raises :class:`~streams.schemas.InvalidEvent` naming the field, here rather than in the
dead-letter topic), keyed as the contract says, batched by kafka-python, and sent when
the batch fills, after ``linger_ms``, or on :meth:`EventProducer.flush`.

Examples
--------
Against a running broker (not run as a doctest)::

    with EventProducer("localhost:9092") as events:
        events.item({"item_id": "sku-1", "title": "Trail shoe", "price": 59.9})
        events.impression({"impression_id": "imp-1", "user_id": "u-42",
                           "items": [{"item_id": "sku-1", "position": 1}]})
        events.interaction({"type": "click", "user_id": "u-42", "item_id": "sku-1",
                            "impression_id": "imp-1"})

Configured like the services, from ``STREAMRANK_`` variables (SASL/TLS included)::

    with EventProducer.from_settings(CommonSettings()) as events:
        ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson
from kafka import KafkaProducer
from pydantic import BaseModel, ValidationError

from streams.schemas import (
    ImpressionEvent,
    InteractionEvent,
    InvalidEvent,
    ItemEvent,
    describe_validation_error,
)
from streams.topics import Topics

if TYPE_CHECKING:
    from ops.settings import CommonSettings

__all__ = ["EventProducer"]

EventLike = BaseModel | Mapping[str, Any]


def _validated(schema: type[BaseModel], event: EventLike) -> BaseModel:
    if isinstance(event, schema):
        return event
    data = event.model_dump() if isinstance(event, BaseModel) else dict(event)
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None


class EventProducer:
    """Emit items, impressions and interactions to a streamrank deployment.

    Parameters
    ----------
    bootstrap_servers
        Kafka bootstrap address(es), ``"host:port[,host:port]"``.
    topic_prefix
        The deployment's topic prefix (``STREAMRANK_TOPIC_PREFIX``).
    linger_ms, batch_size
        kafka-python batching: wait up to ``linger_ms`` to fill batches of ``batch_size`` bytes.
    **kafka_options
        Passed to :class:`kafka.KafkaProducer` (security settings, ``acks``, ...).
    """

    def __init__(self, bootstrap_servers: str = "localhost:9092",
                 topic_prefix: str = "streamrank.", linger_ms: int = 5,
                 batch_size: int = 64 * 1024, **kafka_options: Any) -> None:
        self.topics = Topics(topic_prefix)
        options: dict[str, Any] = {"acks": "all", "linger_ms": linger_ms,
                                   "batch_size": batch_size, **kafka_options}
        self._producer = KafkaProducer(bootstrap_servers=bootstrap_servers, **options)
        self.sent = 0

    @classmethod
    def from_settings(cls, settings: CommonSettings, **options: Any) -> EventProducer:
        """A producer for the deployment ``settings`` describe: its brokers, topic prefix
        and security options (``STREAMRANK_KAFKA_SECURITY_PROTOCOL``, SASL, TLS)."""
        from ops.security import kafka_python_options

        return cls(settings.kafka_bootstrap_servers, settings.topic_prefix,
                   **{**kafka_python_options(settings), **options})

    def _send(self, topic: str, key: str, event: BaseModel) -> None:
        value = orjson.dumps(event.model_dump(exclude_none=True))
        self._producer.send(topic, key=key.encode("utf-8"), value=value)
        self.sent += 1

    def item(self, event: EventLike) -> None:
        """Upsert (or, with ``deleted``, remove) a catalog item; keyed by ``item_id``."""
        ev = _validated(ItemEvent, event)
        assert isinstance(ev, ItemEvent)
        self._send(self.topics.items, ev.item_id, ev)

    def impression(self, event: EventLike) -> None:
        """Record a served list; keyed by ``user_id``."""
        ev = _validated(ImpressionEvent, event)
        assert isinstance(ev, ImpressionEvent)
        self._send(self.topics.impressions, ev.user_id, ev)

    def interaction(self, event: EventLike) -> None:
        """Record a view, click, add-to-cart or purchase; keyed by ``user_id``."""
        ev = _validated(InteractionEvent, event)
        assert isinstance(ev, InteractionEvent)
        self._send(self.topics.interactions, ev.user_id, ev)

    def send_raw(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        """Send bytes as they are (for tests of the dead-letter path and for replays)."""
        self._producer.send(topic, key=key, value=value)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every event sent so far is acknowledged by the broker."""
        self._producer.flush(timeout=timeout)

    def close(self, timeout: float | None = None) -> None:
        """Flush and release the connection."""
        self._producer.close(timeout=timeout)

    def __enter__(self) -> EventProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
