"""Collect the sockets kafka-python 3.0.12 leaks, where they are leaked.

kafka-python leaks one socket for each refused or aborted connection (a producer
retrying through a broker outage, the readiness probe of a starting ``LocalKafka``).
Their ``ResourceWarning``, harmless, would otherwise be raised, as an error under the
suite's ``filterwarnings = error``, in whichever later test the garbage collector
happens to run in. Modules that stop, start or fuzz brokers use
:func:`collect_leaked_sockets` (or the autouse fixture ``no_leaked_sockets``).
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator

import pytest

__all__ = ["collect_leaked_sockets", "no_leaked_sockets"]


def collect_leaked_sockets() -> None:
    """Run the garbage collector with ResourceWarnings ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(autouse=True)
def no_leaked_sockets() -> Iterator[None]:
    """Collect kafka-python's leaked sockets after each test of the module using it."""
    yield
    collect_leaked_sockets()
