"""Checkpoints of the learner: its complete state and the log offset it belongs to.

A :class:`Checkpoint` says "the trainer's state after applying every record of the
examples topic below ``next_offset``": the complete trainer state
(:meth:`learner.trainer.Trainer.state`: FTRL ``z`` and ``n``, dense tables and their AdamW
moments and step counts, examination weights and their Adagrad sums, item counters, the
``examples`` and ``shown`` counters), the keys of the records recently applied (for
:mod:`learner.dedupe`) and the settings the state is valid with. It is encoded with the
snapshot format (:mod:`learner.snapshot`: magic bytes, JSON header, raw little-endian
arrays, CRC-32 checksum; plain numeric dtypes only, never pickle): the arrays are
``trainer.<name>`` and ``dedupe.keys``; the header's ``meta`` holds the format name,
``next_offset``, the topic and partition, the batch size and the settings.

:class:`CheckpointStore` keeps one checkpoint per deployment in Redis, in the hash
``{redis_prefix}learner:checkpoint`` (fields ``next_offset`` and ``blob``), written by one
Lua script that refuses to move ``next_offset`` backwards: a checkpoint is replaced only
by one of the same or a later position, so even a learner that lost its partition and
has not noticed yet cannot undo another's progress.

Examples
--------
>>> import numpy as np
>>> from learner.trainer import Trainer
>>> t = Trainer(bits=8, dense=False, stats_bits=4)
>>> ckpt = Checkpoint(next_offset=512, state=t.state(), seen=np.array([7], dtype=np.uint64),
...                   config=t.config, topic="shop.examples", batch_size=256)
>>> back = decode_checkpoint(encode_checkpoint(ckpt))
>>> back.next_offset, back.seen.tolist(), back.config == t.config
(512, [7], True)
>>> decode_checkpoint(b"SRK1" + bytes(8))
Traceback (most recent call last):
...
learner.checkpoint.CheckpointError: not a learner checkpoint: malformed snapshot header: ...
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson
import redis.asyncio as aioredis

from learner.snapshot import Snapshot, SnapshotError, decode, encode
from learner.statedict import StateDict, prefixed, section

__all__ = ["FORMAT", "Checkpoint", "CheckpointError", "CheckpointStore", "check_config",
           "decode_checkpoint", "encode_checkpoint"]

#: ``meta["format"]`` of a checkpoint (a snapshot of the served weights has none).
FORMAT = "streamrank-learner-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is corrupted, of another format, or made with other settings."""


@dataclass
class Checkpoint:
    """The learner's state after every record of its partition below ``next_offset``."""

    next_offset: int
    #: :meth:`learner.trainer.Trainer.state` at ``next_offset``.
    state: StateDict
    #: Keys of the records applied most recently, oldest first (``learner.dedupe``).
    seen: npt.NDArray[np.uint64]
    #: :attr:`learner.trainer.Trainer.config`: the settings ``state`` is valid with.
    config: dict[str, Any]
    topic: str = ""
    partition: int = 0
    batch_size: int = 0
    created_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    @property
    def examples(self) -> int:
        """Labelled lists applied up to ``next_offset``."""
        return int(self.state["examples"][0]) if self.state["examples"].size else 0


def _normal(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from JSON (for comparisons)."""
    out: dict[str, Any] = orjson.loads(orjson.dumps(config))
    return out


def encode_checkpoint(ckpt: Checkpoint) -> bytes:
    """Encode a checkpoint with the snapshot format (see the module docstring)."""
    arrays = {**prefixed("trainer", ckpt.state), "dedupe.keys": ckpt.seen}
    meta = {"format": FORMAT, "next_offset": ckpt.next_offset, "topic": ckpt.topic,
            "partition": ckpt.partition, "batch_size": ckpt.batch_size,
            "config": ckpt.config}
    return encode(Snapshot(version=ckpt.next_offset, created_ms=ckpt.created_ms,
                           examples=ckpt.examples, arrays=arrays, meta=meta))


def decode_checkpoint(blob: bytes) -> Checkpoint:
    """Decode and verify (checksum, format) bytes made by :func:`encode_checkpoint`."""
    try:
        snap = decode(blob)
    except SnapshotError as exc:
        raise CheckpointError(f"not a learner checkpoint: {exc}") from None
    meta = snap.meta
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"not a learner checkpoint (format {meta.get('format')!r}, "
                              f"expected {FORMAT!r})")
    try:
        return Checkpoint(next_offset=int(meta["next_offset"]),
                          state=section(snap.arrays, "trainer"),
                          seen=snap.arrays["dedupe.keys"].astype(np.uint64, copy=False),
                          config=dict(meta["config"]), topic=str(meta["topic"]),
                          partition=int(meta["partition"]), batch_size=int(meta["batch_size"]),
                          created_ms=snap.created_ms)
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"malformed learner checkpoint: {exc!r}") from None


def check_config(ckpt: Checkpoint, config: dict[str, Any], key: str) -> None:
    """Refuse a checkpoint made with other learner settings, saying what differs."""
    saved, now = _normal(ckpt.config), _normal(config)
    if saved != now:
        diff = ", ".join(f"{k}: saved {saved.get(k)!r}, now {now.get(k)!r}"
                         for k in sorted(set(saved) | set(now)) if saved.get(k) != now.get(k))
        raise CheckpointError(
            f"the learner checkpoint in {key} was made with other settings ({diff}); "
            "restore those settings, or delete the key to learn again from the start of the "
            "examples topic")


# KEYS[1] the checkpoint hash; ARGV[1] next offset, ARGV[2] the encoded checkpoint.
# Returns 1 when written, 0 when the stored checkpoint is further along (kept).
_SAVE = """
local cur = redis.call('HGET', KEYS[1], 'next_offset')
if cur and tonumber(cur) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'next_offset', ARGV[1], 'blob', ARGV[2])
return 1
"""


class CheckpointStore:
    """The deployment's learner checkpoint in Redis.

    Parameters
    ----------
    redis
        An asyncio Redis client (``decode_responses=False``).
    prefix
        Namespace of this deployment's keys.
    """

    def __init__(self, redis: aioredis.Redis, prefix: str = "streamrank:") -> None:
        self.redis = redis
        self.key = f"{prefix}learner:checkpoint"
        self._save = redis.register_script(_SAVE)

    async def save(self, ckpt: Checkpoint) -> bool:
        """Store ``ckpt`` unless the stored one is further along; say whether it was."""
        # megabytes to checksum and copy: off the event loop
        blob = await asyncio.to_thread(encode_checkpoint, ckpt)
        return bool(await self._save(keys=[self.key], args=[ckpt.next_offset, blob]))

    async def load(self) -> Checkpoint | None:
        """The stored checkpoint (verified), or ``None`` when there is none."""
        blob = await self.redis.hget(self.key, "blob")
        if blob is None:
            return None
        return await asyncio.to_thread(decode_checkpoint, bytes(blob))

    async def next_offset(self) -> int | None:
        """The stored checkpoint's position, without loading it."""
        raw = await self.redis.hget(self.key, "next_offset")
        return int(raw) if raw is not None else None
