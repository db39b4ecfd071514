"""Small helpers shared by the test suites: poll for a condition instead of sleeping; service types."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ExternalKafka", "ExternalRedis", "wait_for"]

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.05, message: str = "") -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Parameters
    ----------
    predicate
        A function of no arguments; its first truthy result ends the wait.
    timeout
        Seconds to keep trying.
    interval
        Seconds between two calls.
    message
        What was awaited, for the failure message.

    Raises
    ------
    AssertionError
        When ``timeout`` passes first; the message names what was awaited and the last result.

    Examples
    --------
    >>> calls = []
    >>> wait_for(lambda: calls.append(1) or len(calls) >= 3, timeout=1.0, interval=0.0)
    True
    >>> wait_for(lambda: 0, timeout=0.05, message="the answer")
    Traceback (most recent call last):
    ...
    AssertionError: timed out after 0.05 s waiting for the answer (last result: 0)
    """
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what} (last result: {result!r})")
        time.sleep(interval)


@dataclass(frozen=True)
class ExternalKafka:
    """The ``kafka`` fixture's value when ``STREAMRANK_TEST_KAFKA`` names a running broker.

    It has the same ``bootstrap_servers`` attribute as ``ops.broker.LocalKafka``;
    tests that stop or restart a broker start their own ``LocalKafka`` instead.
    """

    bootstrap_servers: str


@dataclass(frozen=True)
class ExternalRedis:
    """The ``redis_server`` fixture's value when ``STREAMRANK_TEST_REDIS_URL`` names a running server.

    It has the same ``url`` attribute as ``ops.redis_server.LocalRedis``.
    """

    url: str
