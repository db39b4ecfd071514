"""What the scorer reads from Redis for one request: the user's and the session's state
and the candidates' catalog entries, in one round trip.

Catalog entries change rarely: they are cached in process for ``item_ttl_s`` (unknown
items too), so a request usually fetches only the two states.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from learner.catalog import ItemCache
from learner.state import State
from streams.history import mirror_keys

__all__ = ["RequestState", "StateReader"]

RequestState = tuple[State | None, State | None]


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None  # a value we did not write: treat as absent


class StateReader:
    """Reads request state from the keys the worker mirrors (``streams.history``)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, item_ttl_s: float = 30.0,
                 capacity: int = 1_000_000) -> None:
        self.redis = redis
        self.keys = mirror_keys(prefix)
        self.item_ttl_s = item_ttl_s
        self.catalog = ItemCache(capacity=capacity)
        self._fetched: dict[str, float] = {}

    def _stale(self, item_ids: Sequence[str], now: float) -> list[str]:
        fetched = self._fetched
        return [i for i in item_ids if now - fetched.get(i, -1e18) > self.item_ttl_s]

    async def load(self, user_id: str, session_id: str | None,
                   item_ids: Sequence[str]) -> RequestState:
        """The user's and session's state; refreshes stale catalog entries in passing.

        Raises the Redis client's errors: the caller decides how to degrade.
        """
        now = time.monotonic()
        stale = list(dict.fromkeys(self._stale(item_ids, now)))
        keys = [self.keys["user"] + user_id]
        if session_id:
            keys.append(self.keys["session"] + session_id)
        keys += [self.keys["item"] + i for i in stale]
        values = await self.redis.mget(keys)
        user = _json(values[0])
        session = _json(values[1]) if session_id else None
        for item_id, raw in zip(stale, values[len(keys) - len(stale):]):
            entry = _json(raw)
            self.catalog.put(item_id, entry if isinstance(entry, dict) else None)
            self._fetched[item_id] = now
        if len(self._fetched) > 2 * self.catalog.capacity:
            self._fetched.clear()
        return (user if isinstance(user, dict) else None,
                session if isinstance(session, dict) else None)
