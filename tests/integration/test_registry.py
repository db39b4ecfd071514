"""Pinning, rollback and the audit log on a real Redis, with the store publishing."""

from __future__ import annotations

import numpy as np
import pytest
import redis.asyncio as aioredis

from learner.registry import ModelRegistry, NotKept
from learner.snapshot import Snapshot
from learner.store import SnapshotStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _snap(version: int) -> Snapshot:
    return Snapshot(version=version, created_ms=version, examples=version,
                    arrays={"w": np.full(16, version, dtype=np.float32)}, meta={"hash_bits": 4})


async def _publish(store: SnapshotStore, n: int) -> list[int]:
    out = []
    for _ in range(n):
        v = await store.next_version()
        await store.publish(_snap(v))
        out.append(v)
    return out


async def test_a_pin_holds_while_the_learner_publishes_and_unpin_resumes(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    store, reg = SnapshotStore(r, "t:", keep=3), ModelRegistry(r, "t:")
    await _publish(store, 3)
    assert await reg.pin(2, who="alice", reason="looks odd") == 3
    await _publish(store, 6)  # versions 4..9 while pinned
    assert await store.current_version() == 2
    assert (await store.load_current()).version == 2  # type: ignore[union-attr]
    state = await reg.state()
    assert state.pinned == 2 and 2 in state.versions and state.versions[-1] == 9
    assert await reg.unpin(who="alice", reason="fine again") == (2, 9)
    assert await store.current_version() == 9 and (await reg.state()).pinned is None
    assert await reg.unpin(who="alice") is None  # nothing pinned: nothing logged
    log = await reg.audit()
    assert [(e["action"], e["who"], e["from"], e["to"], e["reason"]) for e in log] == [
        ("unpin", "alice", 2, 9, "fine again"), ("pin", "alice", 3, 2, "looks odd")]
    assert all(isinstance(e["ts_ms"], int) and e["id"] for e in log)
    await r.aclose()


async def test_good_versions_outlive_trimming_and_others_do_not(redis_url: str) -> None:
    r = aioredis.Redis.from_url(redis_url)
    store, reg = SnapshotStore(r, "t:", keep=2), ModelRegistry(r, "t:", keep_good=2)
    await _publish(store, 2)
    assert await reg.mark_good(2, {"mrr": 0.5})
    await _publish(store, 5)  # 3..7
    assert await store.versions() == [2, 6, 7]
    assert await reg.last_good() == 2 and await reg.last_good(before=2) is None
    assert (await store.load(2)).version == 2  # type: ignore[union-attr]
    assert not await reg.mark_good(4, {"mrr": 0.1})  # trimmed already
    with pytest.raises(NotKept):
        await reg.pin(4, who="bob")
    assert await store.current_version() == 7  # a refused pin changes nothing
    assert await reg.audit() == []
    # rolling back and forward between kept versions
    assert await reg.pin(2, who="bob", action="rollback") == 7
    assert await reg.pin(6, who="bob", action="rollforward") == 2
    assert [e["action"] for e in await reg.audit()] == ["rollforward", "rollback"]
    # only the newest keep_good good versions stay marked
    await reg.mark_good(6, {"mrr": 0.6})
    await reg.mark_good(7, {"mrr": 0.7})
    state = await reg.state()
    assert sorted(state.good) == [6, 7] and state.good[7] == {"mrr": 0.7}
    await r.aclose()
