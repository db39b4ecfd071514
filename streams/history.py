"""Mirror what the scorer reads to Redis: user and session state, catalog entries.

The stream keeps the truth in changelog-backed tables; after each record it writes the
changed state here, where the scorer reads it for the very next request.

Redis keys, under the deployment's prefix: ``{prefix}state:user:{user_id}``,
``{prefix}state:session:{session_id}`` (JSON states, see :mod:`learner.state`) and
``{prefix}item:{item_id}`` (the catalog entry as JSON). Session state expires after a
day without events; user state and items do not expire.

>>> mirror_keys("shop:")
{'user': 'shop:state:user:', 'session': 'shop:state:session:', 'item': 'shop:item:'}
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from learner.state import State

__all__ = ["RedisMirror", "mirror_keys"]

SESSION_TTL_S = 24 * 3600


def mirror_keys(prefix: str) -> dict[str, str]:
    """Key prefixes of the mirrored state, by kind."""
    return {"user": f"{prefix}state:user:", "session": f"{prefix}state:session:",
            "item": f"{prefix}item:"}


class RedisMirror:
    """Writes what the scorer reads, one pipeline per record."""

    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self.redis = redis
        self.keys = mirror_keys(prefix)

    async def write(self, states: list[tuple[str, str, State]],
                    item: tuple[str, dict[str, Any] | None] | None = None) -> None:
        """Store changed states and a catalog change."""
        if not states and item is None:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, key, state in states:
                ttl = SESSION_TTL_S if kind == "session" else None
                pipe.set(self.keys[kind] + key, orjson.dumps(state), ex=ttl)
            if item is not None:
                item_id, entry = item
                if entry is None:
                    pipe.delete(self.keys["item"] + item_id)
                else:
                    pipe.set(self.keys["item"] + item_id, orjson.dumps(entry))
            await pipe.execute()
