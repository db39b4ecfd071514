"""Which snapshot is served: pin, roll back or forward, unpin; good versions; the audit log.

:class:`~learner.store.SnapshotStore` publishes versions and moves ``current`` to each
new one. This registry, beside it on the same keys, lets an operator (or the drift
alarm) take over that pointer:

* :meth:`ModelRegistry.pin` makes a kept version current and *pins* it: the learner keeps
  learning and publishing new versions, but ``current`` stays until :meth:`unpin`, which
  moves it to the newest version again. A rollback and a roll-forward are pins to an
  older or a newer kept version.
* :meth:`ModelRegistry.mark_good` records that a version served with good quality (the
  monitor calls it); the last ``keep_good`` good versions are never trimmed, so the
  alarm always has one to fall back to.
* Every switch appends an entry (who, when, why, from, to) to the audit log, in the same
  Lua script as the switch itself: the log cannot miss a switch, nor record one that did
  not happen.

Keys, under the deployment's ``redis_prefix`` (the store's, plus)::

    {prefix}snapshot:pinned       the pinned version, absent when not pinned
    {prefix}snapshot:good         sorted set of good versions (score = version)
    {prefix}snapshot:good:info    hash version -> JSON of the quality it was marked with
    {prefix}snapshot:audit        stream of audit entries, field ``entry`` (JSON)

Examples
--------
>>> RegistryState(current=7, pinned=5, versions=[3, 5, 6, 7],
...               good={5: {"mrr": 0.41}}).as_dict()["good"]
{'5': {'mrr': 0.41}}

The behaviour on a real Redis is tested in ``tests/integration/test_registry.py``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from learner.store import SnapshotKeys

__all__ = ["AUDIT_ACTIONS", "ModelRegistry", "NotKept", "RegistryState"]

#: What an audit entry's ``action`` can be.
AUDIT_ACTIONS = ("pin", "rollback", "rollforward", "alarm", "unpin")

#: Audit entries kept (the stream is capped, approximately, at this length).
AUDIT_MAX = 10_000

# KEYS[1] current, KEYS[2] pinned, KEYS[3] audit stream; ARGV[1] version, ARGV[2] key
# prefix of blobs, ARGV[3] entry JSON (without from/to), ARGV[4] channel, ARGV[5] audit cap
# -> the previous current version (or false); error NOT_KEPT when the blob is gone
_PIN = """
if redis.call('EXISTS', ARGV[2] .. ARGV[1]) == 0 then
  return redis.error_reply('NOT_KEPT version ' .. ARGV[1] .. ' is not kept')
end
local old = redis.call('GET', KEYS[1])
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SET', KEYS[1], ARGV[1])
local e = cjson.decode(ARGV[3])
e['from'] = old and tonumber(old) or cjson.null
e['to'] = tonumber(ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 'entry', cjson.encode(e))
redis.call('PUBLISH', ARGV[4], ARGV[1])
return old
"""

# KEYS[1] current, KEYS[2] pinned, KEYS[3] audit stream, KEYS[4] versions zset;
# ARGV[1] entry JSON, ARGV[2] channel, ARGV[3] audit cap -> {old, new} or false when
# nothing was pinned
_UNPIN = """
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local old = redis.call('GET', KEYS[1])
redis.call('DEL', KEYS[2])
local newest = redis.call('ZREVRANGE', KEYS[4], 0, 0)[1]
if newest then redis.call('SET', KEYS[1], newest) end
local e = cjson.decode(ARGV[1])
e['from'] = old and tonumber(old) or cjson.null
e['to'] = newest and tonumber(newest) or cjson.null
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'entry', cjson.encode(e))
if newest then redis.call('PUBLISH', ARGV[2], newest) end
return {old or false, newest or false}
"""

# KEYS[1] good zset, KEYS[2] good info hash, KEYS[3] versions zset; ARGV[1] version,
# ARGV[2] quality JSON, ARGV[3] how many good versions to keep, ARGV[4] key prefix of
# blobs -> 1 when marked, 0 when the version is not kept. A version that stops being good
# is left to the store's trimming (at the next publish).
_MARK_GOOD = """
if redis.call('EXISTS', ARGV[4] .. ARGV[1]) == 0 then return 0 end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
local keep = tonumber(ARGV[3])
local n = redis.call('ZCARD', KEYS[1])
if n > keep then
  local old = redis.call('ZRANGE', KEYS[1], 0, n - keep - 1)
  for _, v in ipairs(old) do
    redis.call('ZREM', KEYS[1], v)
    redis.call('HDEL', KEYS[2], v)
  end
end
return 1
"""


class NotKept(LookupError):
    """The version asked for is not (or no longer) kept in Redis; pick one of
    :meth:`ModelRegistry.state`'s ``versions``."""


@dataclass(frozen=True)
class RegistryState:
    """What is served and what could be: the registry at one moment."""

    #: The served version (``None`` before the first publish).
    current: int | None
    #: The pinned version, ``None`` when serving follows the newest version.
    pinned: int | None
    #: Kept versions, oldest first.
    versions: list[int]
    #: Good versions (a subset of ``versions``) with the quality they were marked with.
    good: dict[int, dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (good versions' keys as strings)."""
        return {"current": self.current, "pinned": self.pinned, "versions": self.versions,
                "newest": self.versions[-1] if self.versions else None,
                "good": {str(k): v for k, v in sorted(self.good.items())}}


class ModelRegistry:
    """Pin, unpin, mark good and audit the served snapshot version.

    Parameters
    ----------
    redis
        An asyncio Redis client (either ``decode_responses`` setting).
    prefix
        Namespace of this deployment's keys (the store's ``redis_prefix``).
    keep_good
        How many good versions stay kept beyond the store's ``snapshot_keep``.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str = "streamrank:",
                 keep_good: int = 3) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keep_good = keep_good
        keys = SnapshotKeys.of(prefix)
        self.k_current, self.k_versions, self.k_blob = keys.current, keys.versions, keys.blob
        self.k_pinned, self.k_good, self.k_good_info = keys.pinned, keys.good, keys.good_info
        self.k_audit, self.channel = keys.audit, keys.channel
        self._pin = redis.register_script(_PIN)
        self._unpin = redis.register_script(_UNPIN)
        self._mark_good = redis.register_script(_MARK_GOOD)

    @staticmethod
    def _entry(action: str, who: str, reason: str) -> bytes:
        if action not in AUDIT_ACTIONS:
            raise ValueError(f"action must be one of {AUDIT_ACTIONS}, not {action!r}")
        return orjson.dumps({"ts_ms": int(time.time() * 1000), "action": action,
                             "who": who, "reason": reason})

    async def pin(self, version: int, *, who: str, reason: str = "",
                  action: str = "pin") -> int | None:
        """Serve ``version`` and keep serving it until :meth:`unpin`; the previous current
        version. ``action`` (``pin``, ``rollback``, ``rollforward``, ``alarm``) is what
        the audit log calls it. Raises :class:`NotKept` for a version not in Redis."""
        try:
            old = await self._pin(keys=[self.k_current, self.k_pinned, self.k_audit],
                                  args=[int(version), self.k_blob,
                                        self._entry(action, who, reason), self.channel,
                                        AUDIT_MAX])
        except aioredis.ResponseError as exc:
            if "NOT_KEPT" in str(exc):
                raise NotKept(f"version {version} is not kept in Redis") from None
            raise
        return int(old) if old is not None else None

    async def unpin(self, *, who: str, reason: str = "") -> tuple[int | None, int | None] | None:
        """Follow the newest version again; ``(from, to)``, or ``None`` when nothing was
        pinned (then nothing changes and nothing is logged)."""
        got: Any = await self._unpin(
            keys=[self.k_current, self.k_pinned, self.k_audit, self.k_versions],
            args=[self._entry("unpin", who, reason), self.channel, AUDIT_MAX])
        if not got:
            return None
        old, new = got
        return (int(old) if old else None, int(new) if new else None)

    async def mark_good(self, version: int, quality: dict[str, Any]) -> bool:
        """Record that ``version`` served well (``quality``: the figures that say so);
        ``False`` when it is no longer kept."""
        return bool(await self._mark_good(
            keys=[self.k_good, self.k_good_info, self.k_versions],
            args=[int(version), orjson.dumps(quality), self.keep_good, self.k_blob]))

    async def last_good(self, before: int | None = None) -> int | None:
        """The newest good version (strictly older than ``before`` when given)."""
        top = f"({before}" if before is not None else "+inf"
        got = await self.redis.zrevrangebyscore(self.k_good, top, "-inf", start=0, num=1)
        return int(got[0]) if got else None

    async def state(self) -> RegistryState:
        """Current, pinned, kept and good versions, read in one round trip."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.get(self.k_current)
        pipe.get(self.k_pinned)
        pipe.zrange(self.k_versions, 0, -1)
        pipe.hgetall(self.k_good_info)
        current, pinned, versions, good = await pipe.execute()
        return RegistryState(
            current=int(current) if current is not None else None,
            pinned=int(pinned) if pinned is not None else None,
            versions=[int(v) for v in versions],
            good={int(k): orjson.loads(v) for k, v in good.items()})

    async def audit(self, count: int = 50) -> list[dict[str, Any]]:
        """The newest ``count`` audit entries, newest first, each with its stream ``id``."""
        rows = await self.redis.xrevrange(self.k_audit, count=count)
        out = []
        for entry_id, fields in rows:
            raw = fields.get(b"entry", fields.get("entry"))
            item = orjson.loads(raw)
            item["id"] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            out.append(item)
        return out
