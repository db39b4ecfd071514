"""Each user's and session's recent history, kept in tables and mirrored to Redis.

The stream keeps the truth in changelog-backed tables (``user_id -> [[type, item_id,
ts], ...]``, newest last, bounded); the scorer reads the same history from Redis lists
(newest first), written in one pipeline per event.

Redis keys, under the deployment's prefix: ``{prefix}hist:user:{user_id}`` and
``{prefix}hist:session:{session_id}``; ``{prefix}item:{item_id}`` holds the catalog entry.

>>> h: dict = {}
>>> append_bounded(h, "u", ["click", "a", 1], 2); append_bounded(h, "u", ["view", "b", 2], 2)
>>> append_bounded(h, "u", ["view", "c", 3], 2); h["u"]
[['view', 'b', 2], ['view', 'c', 3]]
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
import redis.asyncio as aioredis

__all__ = ["RedisMirror", "append_bounded"]


def append_bounded(table: MutableMapping[str, Any], key: str, entry: list[Any],
                   length: int) -> None:
    """Append ``entry`` to the list under ``key``, keeping the newest ``length``."""
    items = list(table.get(key) or [])
    items.append(entry)
    table[key] = items[-length:]


class RedisMirror:
    """Writes what the scorer reads: history lists and catalog entries."""

    def __init__(self, redis: aioredis.Redis, prefix: str, history_length: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.history_length = history_length

    def user_key(self, user_id: str) -> str:
        """Redis list of a user's recent interactions."""
        return f"{self.prefix}hist:user:{user_id}"

    def session_key(self, session_id: str) -> str:
        """Redis list of a session's recent interactions."""
        return f"{self.prefix}hist:session:{session_id}"

    def item_key(self, item_id: str) -> str:
        """Redis string holding a catalog item as JSON."""
        return f"{self.prefix}item:{item_id}"

    async def record_interaction(self, user_id: str, session_id: str | None,
                                 entry: list[Any]) -> None:
        """Push one interaction onto the user's (and session's) history."""
        raw = orjson.dumps(entry)
        keys = [self.user_key(user_id)]
        if session_id:
            keys.append(self.session_key(session_id))
        async with self.redis.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.lpush(k, raw)
                pipe.ltrim(k, 0, self.history_length - 1)
            await pipe.execute()

    async def upsert_item(self, item_id: str, item: dict[str, Any] | None) -> None:
        """Store (or, with ``None``, delete) a catalog item."""
        if item is None:
            await self.redis.delete(self.item_key(item_id))
        else:
            await self.redis.set(self.item_key(item_id), orjson.dumps(item))
