"""Snapshots in Redis: atomic publish, the last few versions kept, atomic read.

Keys, under the deployment's ``redis_prefix``::

    {prefix}snapshot:seq        INCR counter handing out versions
    {prefix}snapshot:current    the served version (an integer)
    {prefix}snapshot:v:{N}      the encoded snapshot of version N
    {prefix}snapshot:versions   sorted set of the kept versions (score = N)
    {prefix}snapshot:channel    pub/sub channel announcing each new current version
    {prefix}snapshot:pinned     set while serving is pinned to a version (learner/registry.py)
    {prefix}snapshot:good       sorted set of versions marked good; kept beyond ``keep``

While a version is pinned, publishing stores new versions but leaves ``current`` alone;
trimming never drops the current, the pinned or a good version.

Publishing and reading are each one Lua script, which Redis runs atomically: a reader
gets the current version together with its bytes, so it can never see a half-written
snapshot, or a version whose bytes were just trimmed away.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from learner.snapshot import Snapshot, decode, encode

__all__ = ["SnapshotKeys", "SnapshotStore"]

# KEYS[1] current, KEYS[2] versions zset, KEYS[3] pinned, KEYS[4] good zset;
# ARGV[1] version, ARGV[2] blob, ARGV[3] key prefix of blobs, ARGV[4] how many plain
# versions to keep, ARGV[5] channel. Returns how many versions were kept before trimming.
_PUBLISH = """
redis.call('SET', ARGV[3] .. ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], tonumber(ARGV[1]), ARGV[1])
local pinned = redis.call('GET', KEYS[3])
if not pinned then
  redis.call('SET', KEYS[1], ARGV[1])
end
local current = redis.call('GET', KEYS[1])
local keep = tonumber(ARGV[4])
local all = redis.call('ZREVRANGE', KEYS[2], 0, -1)
local plain = 0
for _, v in ipairs(all) do
  if v ~= ARGV[1] and v ~= current and v ~= pinned
      and not redis.call('ZSCORE', KEYS[4], v) then
    plain = plain + 1
    if plain >= keep then
      redis.call('DEL', ARGV[3] .. v)
      redis.call('ZREM', KEYS[2], v)
    end
  end
end
if not pinned then
  redis.call('PUBLISH', ARGV[5], ARGV[1])
end
return #all
"""

# KEYS[1] current; ARGV[1] key prefix of blobs -> {version, blob} or nil
_READ_CURRENT = """
local v = redis.call('GET', KEYS[1])
if not v then return nil end
return {v, redis.call('GET', ARGV[1] .. v)}
"""


@dataclass(frozen=True)
class SnapshotKeys:
    """Every Redis key of the snapshots, for one deployment's prefix: the store and the
    registry (:mod:`learner.registry`) both take them from here, so they cannot disagree.

    >>> k = SnapshotKeys.of("shop:")
    >>> k.current, k.blob + "7", k.pinned
    ('shop:snapshot:current', 'shop:snapshot:v:7', 'shop:snapshot:pinned')
    """

    seq: str
    current: str
    blob: str
    versions: str
    channel: str
    pinned: str
    good: str
    good_info: str
    audit: str

    @classmethod
    def of(cls, prefix: str) -> SnapshotKeys:
        """The keys under ``prefix``."""
        base = f"{prefix}snapshot:"
        return cls(seq=base + "seq", current=base + "current", blob=base + "v:",
                   versions=base + "versions", channel=base + "channel",
                   pinned=base + "pinned", good=base + "good", good_info=base + "good:info",
                   audit=base + "audit")


class SnapshotStore:
    """Publish and read model snapshots in Redis.

    Parameters
    ----------
    redis
        An asyncio Redis client (``decode_responses=False``).
    prefix
        Namespace of this deployment's keys.
    keep
        How many versions stay readable.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str = "streamrank:", keep: int = 5) -> None:
        self.redis = redis
        self.prefix = prefix
        self.keep = keep
        keys = SnapshotKeys.of(prefix)
        self.k_seq, self.k_current, self.k_blob = keys.seq, keys.current, keys.blob
        self.k_versions, self.channel = keys.versions, keys.channel
        self.k_pinned, self.k_good = keys.pinned, keys.good
        self._publish = redis.register_script(_PUBLISH)
        self._read = redis.register_script(_READ_CURRENT)

    async def next_version(self) -> int:
        """A fresh version number, unique in this deployment."""
        return int(await self.redis.incr(self.k_seq))

    async def publish(self, snap: Snapshot) -> None:
        """Store ``snap`` and make it the current version (unless serving is pinned), in
        one atomic step."""
        await self.publish_encoded(snap.version, encode(snap))

    async def publish_encoded(self, version: int, blob: bytes) -> None:
        """Like :meth:`publish`, for a snapshot already encoded (e.g. in a thread)."""
        await self._publish(keys=[self.k_current, self.k_versions, self.k_pinned, self.k_good],
                            args=[version, blob, self.k_blob, self.keep, self.channel])

    async def current_version(self) -> int | None:
        """The current version number, or ``None`` when nothing was published."""
        v = await self.redis.get(self.k_current)
        return int(v) if v is not None else None

    async def load_current(self) -> Snapshot | None:
        """The current snapshot (checksum verified), or ``None`` when there is none."""
        got: Any = await self._read(keys=[self.k_current], args=[self.k_blob])
        if not got or got[1] is None:
            return None
        # megabytes to check and copy: off the event loop, so requests keep flowing
        return await asyncio.to_thread(decode, bytes(got[1]))

    async def load(self, version: int) -> Snapshot | None:
        """A kept version, or ``None`` when it was trimmed or never existed."""
        blob = await self.redis.get(f"{self.k_blob}{version}")
        return await asyncio.to_thread(decode, bytes(blob)) if blob is not None else None

    async def versions(self) -> list[int]:
        """The kept versions, oldest first."""
        return [int(v) for v in await self.redis.zrange(self.k_versions, 0, -1)]
