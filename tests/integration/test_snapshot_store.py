"""Snapshots in a real Redis: atomic publish, kept versions, no torn reads."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import redis.asyncio as aioredis

from learner.snapshot import Snapshot
from learner.store import SnapshotStore

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _snap(version: int, size: int = 1 << 18) -> Snapshot:
    # every weight equals the version: a torn read would mix two versions' values
    return Snapshot(version=version, created_ms=version, examples=version,
                    arrays={"w": np.full(size, version, dtype=np.float32)},
                    meta={"hash_bits": 18})


async def test_publish_then_load_round_trips(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = SnapshotStore(client, prefix="t:", keep=3)
    assert await store.load_current() is None
    assert await store.current_version() is None
    v = await store.next_version()
    await store.publish(_snap(v))
    got = await store.load_current()
    assert got is not None and got.version == v and got.model_version == f"v{v}"
    np.testing.assert_array_equal(got.arrays["w"], _snap(v).arrays["w"])
    await client.aclose()


async def test_only_the_last_versions_are_kept(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    store = SnapshotStore(client, prefix="t:", keep=3)
    for _ in range(6):
        await store.publish(_snap(await store.next_version(), size=16))
    assert await store.versions() == [4, 5, 6]
    assert await store.load(3) is None
    assert (await store.load(4)).version == 4  # type: ignore[union-attr]
    assert await store.current_version() == 6
    await client.aclose()


async def test_reader_never_sees_a_partial_snapshot(redis_url: str) -> None:
    writer_client = aioredis.Redis.from_url(redis_url)
    reader_client = aioredis.Redis.from_url(redis_url)
    writer = SnapshotStore(writer_client, prefix="t:", keep=2)
    reader = SnapshotStore(reader_client, prefix="t:", keep=2)
    stop = asyncio.Event()
    published: list[int] = []

    async def write_loop() -> None:
        while not stop.is_set():
            v = await writer.next_version()
            await writer.publish(_snap(v))
            published.append(v)

    async def read_loop() -> list[int]:
        seen: list[int] = []
        while len(seen) < 300:
            snap = await reader.load_current()  # verifies the checksum
            if snap is None:
                await asyncio.sleep(0)
                continue
            w = snap.arrays["w"]
            assert w.shape == (1 << 18,)
            assert float(w.min()) == float(w.max()) == float(snap.version), "torn read"
            seen.append(snap.version)
        return seen

    task = asyncio.create_task(write_loop())
    seen = await read_loop()
    stop.set()
    await task
    assert len(published) >= 10, "the writer should have published many versions meanwhile"
    assert len(set(seen)) >= 5, "the reader should have observed many versions"
    assert seen == sorted(seen), "versions only move forward"
    await writer_client.aclose()
    await reader_client.aclose()
