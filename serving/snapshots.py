"""The scorer's copy of the current model, kept fresh from Redis in the background.

A background task polls the current version every ``refresh_interval_ms`` and loads the
snapshot only when the version changed, so a request never waits for Redis. Nothing
here raises into request handling: Redis being down sets :attr:`SnapshotCache.redis_ok`
to ``False`` (the scorer then answers degraded), and a snapshot that fails to decode or
to verify keeps the previous model, counts an error and is not retried until a newer
version appears.

Examples
--------
With a stand-in store (the real one is :class:`~learner.store.SnapshotStore`):

>>> import asyncio
>>> import numpy as np
>>> from learner.snapshot import Snapshot
>>> class OneSnapshot:
...     async def current_version(self):
...         return 7
...     async def load_current(self):
...         return Snapshot(version=7, created_ms=0, examples=3, meta={"hash_bits": 8},
...                         arrays={"w": np.zeros(2**8, dtype=np.float32)})
>>> cache = SnapshotCache(OneSnapshot())
>>> asyncio.run(cache.refresh()), cache.model.version, cache.redis_ok, cache.loads
(True, 'v7', True, 1)
>>> asyncio.run(cache.refresh())  # same version: nothing to load
False
>>> asyncio.run(cache.refresh(force=True)), cache.loads  # unless forced
(True, 2)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from learner.snapshot import Snapshot, SnapshotError
from serving.model import ServingModel

__all__ = ["SnapshotCache", "SnapshotSource"]

log = logging.getLogger(__name__)


class SnapshotSource(Protocol):
    """What the cache needs of a store (:class:`~learner.store.SnapshotStore` has it)."""

    async def current_version(self) -> int | None: ...

    async def load_current(self) -> Snapshot | None: ...


class SnapshotCache:
    """Holds the current :class:`~serving.model.ServingModel`, or ``None``.

    Parameters
    ----------
    store
        Where snapshots are published.
    refresh_interval_ms
        How often the background task checks the current version.

    Attributes
    ----------
    model
        The served model, ``None`` until a snapshot was loaded.
    redis_ok
        Whether the last contact with Redis succeeded (``False`` before the first).
    last_error
        What went wrong last, or ``None``.
    loads, errors
        Snapshots loaded; failed polls and snapshots that would not decode.
    """

    def __init__(self, store: SnapshotSource, refresh_interval_ms: int = 100) -> None:
        self.store = store
        self.refresh_interval_ms = refresh_interval_ms
        self.model: ServingModel | None = None
        self.redis_ok = False
        self.last_error: str | None = None
        self.loads = 0
        self.errors = 0
        self._bad_version: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def refresh(self, force: bool = False) -> bool:
        """Poll once; load the current snapshot when its version changed.

        Returns ``True`` when a new model was loaded. Never raises (except on
        cancellation). ``force`` loads the current snapshot even when its version is
        the one served, or one that failed to decode before (``POST /admin/reload``).
        """
        try:
            version = await self.store.current_version()
        except Exception as exc:  # redis errors, timeouts, OSError: all mean "no contact"
            self._fail(f"redis: {type(exc).__name__}: {exc}", contact=False)
            return False
        self.redis_ok = True
        current = self.model.snapshot.version if self.model is not None else None
        # nothing published (or the keys were deleted): keep serving what we have
        if version is None:
            return False
        if not force and (version == current or version == self._bad_version):
            return False
        try:
            snap = await self.store.load_current()
            if snap is None:  # trimmed between the two reads; the next poll sees the newer one
                return False
            model = ServingModel(snap)
        except SnapshotError as exc:  # corrupt or foreign bytes: keep serving the previous model
            self._fail(f"snapshot v{version}: {exc}", contact=True)
            self._bad_version = version
            return False
        except Exception as exc:
            self._fail(f"redis: {type(exc).__name__}: {exc}", contact=False)
            return False
        self.model = model
        self.loads += 1
        self.last_error = None
        log.info("serving model %s (%d examples)", model.version, snap.examples)
        return True

    def _fail(self, error: str, contact: bool) -> None:
        self.redis_ok = contact
        self.errors += 1
        if error != self.last_error:  # log a change, not every poll of an outage
            log.warning("snapshot refresh failed: %s", error)
        self.last_error = error

    async def _poll(self, stopping: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.refresh_interval_ms / 1000.0)
            if stopping.is_set():
                return
            try:
                await self.refresh()
            except Exception:  # pragma: no cover - refresh() does not raise; belt and braces
                log.exception("snapshot refresh crashed; polling goes on")

    async def start(self) -> None:
        """Load once, then keep polling in a background task."""
        await self.refresh()
        if self._task is None:
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._poll(self._stopping),
                                             name="streamrank-snapshot-refresh")

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop the background task: let a poll in flight finish, cancel it after ``timeout``."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait_for(task, timeout)
        except TimeoutError:  # wait_for cancelled it
            log.warning("snapshot refresh did not stop within %.1fs; cancelled", timeout)
