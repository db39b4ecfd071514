"""Mirror what the scorer reads to Redis: user and session state, catalog entries.

The stream keeps the truth in changelog-backed tables; after each record (the events
agent: after each batch) it stages the changed state here (:meth:`RedisMirror.stage`, no
wait), and a background task writes what is staged in one pipeline as soon as the
previous write is done, usually a few milliseconds later, where the scorer reads it for
the next request. Only the newest
state of a key is written: a burst of events of one user is one write. When Redis does
not answer, what is staged stays staged (newest wins) and is written when it is back.

Redis keys, under the deployment's prefix: ``{prefix}state:user:{user_id}``,
``{prefix}state:session:{session_id}`` (JSON states, see :mod:`learner.state`) and
``{prefix}item:{item_id}`` (the catalog entry as JSON). Session state expires after a
day without events; user state and items do not expire.

>>> mirror_keys("shop:")
{'user': 'shop:state:user:', 'session': 'shop:state:session:', 'item': 'shop:item:'}
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis

from learner.state import State

__all__ = ["RedisMirror", "mirror_keys"]

log = logging.getLogger("streamrank.worker")

SESSION_TTL_S = 24 * 3600


def mirror_keys(prefix: str) -> dict[str, str]:
    """Key prefixes of the mirrored state, by kind."""
    return {"user": f"{prefix}state:user:", "session": f"{prefix}state:session:",
            "item": f"{prefix}item:"}


class RedisMirror:
    """Writes what the scorer reads: staged per record, written in coalesced pipelines.

    Examples
    --------
    >>> class FakePipe:
    ...     def __init__(self, log): self.log = log
    ...     async def __aenter__(self): return self
    ...     async def __aexit__(self, *exc): return False
    ...     def set(self, key, value, ex=None): self.log.append(("set", key, value, ex))
    ...     def delete(self, key): self.log.append(("del", key))
    ...     async def execute(self): pass
    >>> class FakeRedis:
    ...     def __init__(self): self.log = []
    ...     def pipeline(self, transaction=False): return FakePipe(self.log)
    >>> r = FakeRedis()
    >>> m = RedisMirror(r, "p:")
    >>> m.stage([("user", "u", {"n": 1})])
    >>> m.stage([("user", "u", {"n": 2}), ("session", "s", {})], item=("a", None))
    >>> m.staged
    3
    >>> asyncio.run(m.flush())
    3
    >>> r.log
    [('set', 'p:state:user:u', b'{"n":2}', None), ('set', 'p:state:session:s', b'{}', 86400), ('del', 'p:item:a')]
    """

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = mirror_keys(prefix)
        #: key -> (JSON bytes, or ``None`` to delete; expiry in seconds or ``None``)
        self._staged: dict[str, tuple[bytes | None, int | None]] = {}
        self._wake = asyncio.Event()
        #: Keys written, and writes that failed (Redis down), since the start.
        self.written = 0
        self.failures = 0

    @property
    def staged(self) -> int:
        """Keys waiting to be written."""
        return len(self._staged)

    def stage(self, states: list[tuple[str, str, State]],
              item: tuple[str, dict[str, Any] | None] | None = None) -> None:
        """Queue changed states and a catalog change (the newest value of a key wins)."""
        for kind, key, state in states:
            self.stage_encoded(kind, key, orjson.dumps(state))
        if item is not None:
            item_id, entry = item
            self.stage_encoded("item", item_id, None if entry is None else orjson.dumps(entry))

    def stage_encoded(self, kind: str, key: str, data: bytes | None) -> None:
        """Queue one value already in JSON (``None``: delete the key), e.g. the bytes a
        state's changelog record carries, so that it is serialised once."""
        ttl = SESSION_TTL_S if kind == "session" else None
        self._staged[self.keys[kind] + key] = (data, ttl)
        self._wake.set()

    async def flush(self) -> int:
        """Write everything staged in one pipeline; return how many keys. On an error what
        was taken is staged again (unless a newer value came meanwhile) and it raises."""
        batch, self._staged = self._staged, {}
        if not batch:
            return 0
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, (value, ttl) in batch.items():
                    if value is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, value, ex=ttl)
                await pipe.execute()
        except BaseException:
            self.failures += 1
            self._staged = {**batch, **self._staged}
            raise
        self.written += len(batch)
        return len(batch)

    async def run(self, retry_s: float = 0.5) -> None:
        """Write what is staged, for ever: as soon as something is, and again after
        ``retry_s`` when Redis did not answer."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("could not mirror %d keys to Redis (will retry): %s",
                            self.staged, exc)
                await asyncio.sleep(retry_s)
                self._wake.set()
