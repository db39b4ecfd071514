"""The monitor's data in Redis: a capped time series of points, the latest point, alarms,
and the workers' event counters.

The learner's worker writes one point (a flat JSON object of figures) per tick; the
dashboard and the scorer's ``/metrics`` read them. Keys, under the deployment's
``redis_prefix``::

    {prefix}monitor:series     stream of points, field ``p`` (JSON), capped at ``max_points``
    {prefix}monitor:latest     the newest point (JSON)
    {prefix}monitor:alarm      the active alarm (JSON), absent when there is none
    {prefix}monitor:alarms     stream of alarm records (fired and resolved), field ``a``
    {prefix}monitor:counters   hash of event totals that every worker adds to
                               (impressions, interactions, items, dead_letters)

Non-finite figures are written as ``null`` (orjson's encoding of NaN), which JSON
charts draw as gaps.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

__all__ = ["COUNTERS", "DETECTORS", "MonitorKeys", "SeriesReader", "SeriesWriter"]

#: The event counters every worker adds to.
COUNTERS = ("impressions", "interactions", "items", "dead_letters")
#: The drift detectors on the loss stream (:mod:`monitor.drift`).
DETECTORS = ("adwin", "page_hinkley")


class MonitorKeys:
    """Names of the monitor's Redis keys under one prefix."""

    def __init__(self, prefix: str = "streamrank:") -> None:
        self.series = f"{prefix}monitor:series"
        self.latest = f"{prefix}monitor:latest"
        self.alarm = f"{prefix}monitor:alarm"
        self.alarms = f"{prefix}monitor:alarms"
        self.counters = f"{prefix}monitor:counters"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _field(fields: dict[Any, Any], name: str) -> Any:
    return fields.get(name.encode(), fields.get(name))


class SeriesWriter:
    """Writes points and alarms (the learner's worker) and counters (every worker).

    Parameters
    ----------
    redis
        An asyncio Redis client.
    prefix
        The deployment's ``redis_prefix``.
    max_points
        Points kept in the series (approximately: Redis trims whole nodes).
    """

    def __init__(self, redis: aioredis.Redis, prefix: str = "streamrank:",
                 max_points: int = 7200) -> None:
        self.redis = redis
        self.keys = MonitorKeys(prefix)
        self.max_points = max_points

    async def write_point(self, point: dict[str, Any]) -> None:
        """Append ``point`` to the series and make it the latest, in one transaction."""
        raw = orjson.dumps(point, option=orjson.OPT_SERIALIZE_NUMPY)
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.keys.series, {"p": raw}, maxlen=self.max_points, approximate=True)
        pipe.set(self.keys.latest, raw)
        await pipe.execute()

    async def add_counts(self, counts: dict[str, int]) -> None:
        """Add this worker's new events to the shared totals."""
        todo = {k: v for k, v in counts.items() if v}
        if not todo:
            return
        pipe = self.redis.pipeline(transaction=False)
        for k, v in todo.items():
            pipe.hincrby(self.keys.counters, k, v)
        await pipe.execute()

    async def fire_alarm(self, alarm: dict[str, Any]) -> None:
        """Record an alarm as active and in the alarm history."""
        raw = orjson.dumps({**alarm, "state": "fired"})
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.alarm, raw)
        pipe.xadd(self.keys.alarms, {"a": raw}, maxlen=1000, approximate=True)
        await pipe.execute()

    async def resolve_alarm(self, resolution: dict[str, Any]) -> None:
        """Clear the active alarm and record how it ended."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(self.keys.alarm)
        pipe.xadd(self.keys.alarms, {"a": orjson.dumps({**resolution, "state": "resolved"})},
                  maxlen=1000, approximate=True)
        await pipe.execute()


class SeriesReader:
    """Reads what :class:`SeriesWriter` wrote (the dashboard, ``/metrics``, the CLI)."""

    def __init__(self, redis: aioredis.Redis, prefix: str = "streamrank:") -> None:
        self.redis = redis
        self.keys = MonitorKeys(prefix)

    async def points(self, count: int = 600, after: str | None = None) -> list[dict[str, Any]]:
        """Up to ``count`` points, oldest first: the newest ones, or those after the stream
        id ``after``. Each carries its stream id as ``id``."""
        if after:
            rows = await self.redis.xrange(self.keys.series, min=f"({after}", count=count)
        else:
            rows = list(reversed(await self.redis.xrevrange(self.keys.series, count=count)))
        return [{**orjson.loads(_field(f, "p")), "id": _text(i)} for i, f in rows]

    async def latest(self) -> dict[str, Any] | None:
        """The newest point, or ``None``."""
        raw = await self.redis.get(self.keys.latest)
        return orjson.loads(raw) if raw is not None else None

    async def alarm(self) -> dict[str, Any] | None:
        """The active alarm, or ``None``."""
        raw = await self.redis.get(self.keys.alarm)
        return orjson.loads(raw) if raw is not None else None

    async def alarms(self, count: int = 50) -> list[dict[str, Any]]:
        """The newest alarm records, newest first."""
        rows = await self.redis.xrevrange(self.keys.alarms, count=count)
        return [{**orjson.loads(_field(f, "a")), "id": _text(i)} for i, f in rows]

    async def counters(self) -> dict[str, int]:
        """Event totals of all workers."""
        raw = await self.redis.hgetall(self.keys.counters)
        got = {_text(k): int(v) for k, v in raw.items()}
        return {k: got.get(k, 0) for k in COUNTERS}
