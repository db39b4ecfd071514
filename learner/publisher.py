"""Publish the trainer's weights as a new snapshot, at most once per interval.

>>> import asyncio
>>> class Store:                       # a fake of our own small store interface
...     def __init__(self): self.published = []
...     async def next_version(self): return len(self.published) + 1
...     async def publish_encoded(self, version, blob): self.published.append(decode(blob))
>>> from learner.snapshot import decode
>>> from learner.trainer import Trainer
>>> t, store = Trainer(bits=8, dense=False), Store()
>>> pub = SnapshotPublisher(t, store, interval_ms=0)
>>> asyncio.run(pub.maybe_publish())   # nothing learned yet: nothing to publish
False
>>> t.dirty = 1
>>> asyncio.run(pub.maybe_publish()), store.published[0].model_version
(True, 'v1')
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from learner.snapshot import Snapshot, encode
from learner.trainer import Trainer

__all__ = ["SnapshotPublisher", "SnapshotSink"]


class SnapshotSink(Protocol):
    """Where snapshots go (``learner.store.SnapshotStore`` in production)."""

    async def next_version(self) -> int: ...

    async def publish_encoded(self, version: int, blob: bytes) -> None: ...


class SnapshotPublisher:
    """Turns trainer updates into published snapshots on a cadence."""

    def __init__(self, trainer: Trainer, store: SnapshotSink, interval_ms: int = 500) -> None:
        self.trainer = trainer
        self.store = store
        self.interval_ms = interval_ms
        self._last_ms = 0.0
        self.published = 0
        self.last_version: int | None = None
        #: The last snapshot published (what the scorer now serves).
        self.latest: Snapshot | None = None
        self.last_publish_ms: float | None = None

    async def maybe_publish(self) -> bool:
        """Publish when there were updates and the interval has passed; say whether it did."""
        now = time.monotonic() * 1000
        if self.trainer.dirty == 0 or now - self._last_ms < self.interval_ms:
            return False
        version = await self.store.next_version()
        t0 = time.perf_counter()
        snap = self.trainer.snapshot(version)  # copies: learning may go on meanwhile
        # encoding megabytes off the event loop, so the streams keep flowing
        blob = await asyncio.to_thread(encode, snap)
        await self.store.publish_encoded(version, blob)
        self.latest = snap
        self.last_publish_ms = (time.perf_counter() - t0) * 1000
        self._last_ms = now
        self.published += 1
        self.last_version = version
        return True
