"""Log served lists to the impressions topic without ever blocking a response.

:meth:`ImpressionLogger.log` only puts the event on an in-process queue; when the buffer
is full the event is dropped and counted, never waited for. The bound, ``buffer_size``,
covers every event the process holds: those waiting in the queue *and* those handed to
kafka-python but not yet acknowledged by the broker (kafka-python would otherwise keep
accepting sends into its own 32 MB buffer while the broker is down, and nothing would
ever be counted as dropped). One background thread
owns the kafka-python producer: it creates it lazily (so a broker that is down never
delays the scorer's startup; the thread retries with backoff while the queue absorbs
traffic), validates each event against the contract, encodes it and sends it keyed by
``user_id``.

Counters (read them from any thread): ``logged`` (acknowledged by the broker),
``dropped`` (the buffer was full), ``failed`` (invalid, or the send failed); gauges
``queued`` (in the queue) and ``unacked`` (sent, waiting for the broker's answer).

Examples
--------
Nothing connects until the thread starts; a full queue drops at once:

>>> logger = ImpressionLogger("127.0.0.1:1", "streamrank.impressions", buffer_size=1)
>>> event = {"impression_id": "imp-1", "user_id": "u-42",
...          "items": [{"item_id": "sku-1", "position": 1}]}
>>> logger.log(event), logger.log(event), logger.dropped, logger.queued
(True, False, 1, 1)
>>> logger.close(timeout=0.1)
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
import warnings
from collections.abc import Mapping
from typing import Any

import orjson
from pydantic import ValidationError

from streams.schemas import ImpressionEvent, describe_validation_error

with warnings.catch_warnings():
    # kafka-python 3.0.12 reads its protocol schemas with importlib.resources.read_text and
    # open_text, deprecated on Python 3.11/3.12: harmless, and must not break a -W error run
    warnings.filterwarnings("ignore", message="(read|open)_text is deprecated",
                            category=DeprecationWarning)
    from kafka import KafkaProducer

__all__ = ["ImpressionLogger", "broker_reachable"]

log = logging.getLogger(__name__)

_CLOSE = object()  # wakes the thread up when the logger closes


def broker_reachable(bootstrap_servers: str, timeout: float = 0.5) -> bool:
    """Whether any bootstrap address accepts a TCP connection.

    >>> broker_reachable("127.0.0.1:1", timeout=0.2)
    False
    """
    for address in bootstrap_servers.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "localhost", int(port)),
                                          timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


class ImpressionLogger:
    """A bounded, non-blocking queue of impressions, drained to Kafka by one thread.

    Parameters
    ----------
    bootstrap_servers
        Kafka bootstrap address(es).
    topic
        The impressions topic (``Topics(prefix).impressions``).
    buffer_size
        Most events waiting for Kafka; more are dropped and counted.
    retry_backoff_s, retry_backoff_max_s
        First and longest wait between attempts to reach an unreachable broker.
    **kafka_options
        Passed to :class:`kafka.KafkaProducer` (security settings, ``linger_ms``, ...).
    """

    def __init__(self, bootstrap_servers: str, topic: str, buffer_size: int = 10_000,
                 retry_backoff_s: float = 0.2, retry_backoff_max_s: float = 5.0,
                 **kafka_options: Any) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.retry_backoff_s = retry_backoff_s
        self.retry_backoff_max_s = retry_backoff_max_s
        # bounded waits: a broker that vanishes fails sends (counted) instead of parking the thread
        self.kafka_options: dict[str, Any] = {"acks": 1, "linger_ms": 5,
                                              "bootstrap_timeout_ms": 5000,
                                              "max_block_ms": 10_000, **kafka_options}
        self.last_error: str | None = None
        self.buffer_size = buffer_size
        # +1: room for the close marker when the buffer is full
        self._queue: queue.Queue[object] = queue.Queue(maxsize=buffer_size + 1)
        self._lock = threading.Lock()
        self._logged = self._dropped = self._failed = 0
        self._held = 0  # accepted and not yet settled (logged, failed or dropped at close)
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._thread: threading.Thread | None = None

    # -- counters -------------------------------------------------------------------------

    @property
    def logged(self) -> int:
        """Events the broker acknowledged."""
        return self._logged

    @property
    def dropped(self) -> int:
        """Events dropped because the queue was full (or the logger closed)."""
        return self._dropped

    @property
    def failed(self) -> int:
        """Events that were invalid or whose send failed."""
        return self._failed

    @property
    def queued(self) -> int:
        """Events waiting in the queue now."""
        return self._queue.qsize()

    @property
    def unacked(self) -> int:
        """Events handed to the Kafka producer whose acknowledgement has not come yet."""
        return max(0, self._held - self._queue.qsize())

    def _count(self, logged: int = 0, dropped: int = 0, failed: int = 0) -> None:
        """Settle accepted events: each leaves the buffer as logged, dropped or failed."""
        with self._lock:
            self._logged += logged
            self._dropped += dropped
            self._failed += failed
            self._held -= logged + dropped + failed

    def _accept(self) -> bool:
        """Take one place in the buffer, or count a drop when it is full."""
        with self._lock:
            if self._held >= self.buffer_size or self._closing.is_set():
                self._dropped += 1
                return False
            self._held += 1
            return True

    # -- the request side -----------------------------------------------------------------

    def log(self, event: ImpressionEvent | Mapping[str, Any]) -> bool:
        """Queue one served list; ``False`` (and counted as dropped) when the queue is full.

        ``event`` is an :class:`~streams.schemas.ImpressionEvent` or a mapping of its
        fields (validated in the background thread, off the request path).
        """
        if not self._accept():
            return False
        try:
            self._queue.put_nowait(event)
        except queue.Full:  # only when close() raced us for the marker's place
            self._count(dropped=1)
            return False
        return True

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background thread (returns at once; nothing connects yet)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="streamrank-impressions",
                                            daemon=True)
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Send what can be sent within ``timeout`` seconds, then stop the thread.

        Events still queued when time is up are counted as failed.
        """
        self._deadline = time.monotonic() + timeout
        self._closing.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(_CLOSE)
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("impression logger still busy after %.1fs; leaving it behind", timeout)
        else:
            self._count(dropped=self._drain())

    # -- the background thread ------------------------------------------------------------

    def _drain(self) -> int:
        n = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return n
            n += item is not _CLOSE

    def _run(self) -> None:
        producer: KafkaProducer | None = None
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._closing.is_set():
                        break
                    continue
                if item is _CLOSE:  # put last, after log() stopped accepting
                    self._count(failed=self._drain())
                    break
                if self._closing.is_set() and time.monotonic() > self._deadline:
                    self._count(failed=1 + self._drain())
                    break
                if producer is None:
                    producer = self._connect()
                    if producer is None:  # closing and the broker never came: give up
                        self._count(failed=1 + self._drain())
                        break
                self._send(producer, item)
        except Exception as exc:  # the thread must not die silently
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("impression logger stopped")
        finally:
            if producer is not None:
                left = max(0.0, self._deadline - time.monotonic())
                with contextlib.suppress(Exception):
                    producer.flush(timeout=min(left, 30.0))
                with contextlib.suppress(Exception):
                    producer.close(timeout=min(left, 30.0))

    def _connect(self) -> KafkaProducer | None:
        """A producer, retrying with backoff until the broker answers or we close."""
        backoff = self.retry_backoff_s
        while True:
            if broker_reachable(self.bootstrap_servers):
                try:
                    return KafkaProducer(bootstrap_servers=self.bootstrap_servers,
                                         **self.kafka_options)
                except Exception as exc:
                    self._error(f"cannot create a Kafka producer: {type(exc).__name__}: {exc}")
            else:
                self._error(f"Kafka at {self.bootstrap_servers} is unreachable; impressions "
                            "wait in the buffer (check STREAMRANK_KAFKA_BOOTSTRAP_SERVERS)")
            if self._closing.wait(backoff):
                return None
            backoff = min(backoff * 2, self.retry_backoff_max_s)

    def _error(self, error: str) -> None:
        if error != self.last_error:
            log.warning("%s", error)
        self.last_error = error

    def _send(self, producer: KafkaProducer, item: object) -> None:
        try:
            event = (item if isinstance(item, ImpressionEvent)
                     else ImpressionEvent.model_validate(item))
        except ValidationError as exc:
            self._count(failed=1)
            self._error(f"invalid impression not logged: {describe_validation_error(exc)}")
            return
        # pre-encoded bytes: no serializer callables (kafka-python 3 warns on plain functions)
        key = event.user_id.encode("utf-8")
        value = orjson.dumps(event.model_dump(exclude_none=True))
        try:
            future = producer.send(self.topic, key=key, value=value)
        except Exception as exc:
            self._count(failed=1)
            self._error(f"impression send failed: {type(exc).__name__}: {exc}")
            return
        future.add_callback(self._on_sent)
        future.add_errback(self._on_error)

    def _on_sent(self, _metadata: object) -> None:
        self._count(logged=1)

    def _on_error(self, exc: BaseException) -> None:
        self._count(failed=1)
        self._error(f"impression send failed: {type(exc).__name__}: {exc}")
