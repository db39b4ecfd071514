"""Snapshot size and publish time as the hashed weight space grows, and scorer memory.

For 2^18 ... 2^24 hashed weights: a trainer that learned part of the example stream takes
a snapshot (``Trainer.snapshot``: the served weights computed from the FTRL state),
which is encoded and published to a real Redis by ``learner.store.SnapshotStore`` (one
Lua script: store, make current, trim, announce) and read back and decoded (checksum
verified) as the scorer does. The reference is Redis itself: a plain ``SET`` and ``GET``
of the same bytes. A scorer process (``streamrank serve``) then loads each size, and its
resident memory is compared with the no-op app's (``bench.noop_app``, same stack).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx

from bench.context import BenchContext
from bench.ours import new_trainer
from bench.procs import ModuleProcess, rss_mib, wait_http
from bench.results import Figure, Section
from learner.snapshot import encode
from learner.store import SnapshotStore

__all__ = ["BITS", "run"]

BITS = (18, 20, 22, 24)
#: Redis timeout (s) that lets a scorer read a large snapshot, when the default does not.
LONG_TIMEOUT_S = 10


async def _time_store(redis_url: str, prefix: str, trainer: Any, reps: int) -> dict[str, Any]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url, socket_timeout=60)
    store = SnapshotStore(client, prefix=prefix)
    t: dict[str, list[float]] = {"snapshot": [], "encode": [], "publish": [], "load": [],
                                 "redis_set": [], "redis_get": []}
    size = 0
    try:
        for _ in range(reps):
            version = await store.next_version()
            t0 = time.perf_counter()
            snap = trainer.snapshot(version)
            t1 = time.perf_counter()
            blob = encode(snap)
            t2 = time.perf_counter()
            await store.publish(snap)  # encodes again, as the worker's publish does
            t3 = time.perf_counter()
            loaded = await store.load_current()
            t4 = time.perf_counter()
            assert loaded is not None and loaded.version == version
            await client.set(f"{prefix}bench:raw", blob)
            t5 = time.perf_counter()
            await client.get(f"{prefix}bench:raw")
            t6 = time.perf_counter()
            size = len(blob)
            for k, dt in zip(t, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5)):
                t[k].append(dt * 1000)
        await client.delete(f"{prefix}bench:raw")
    finally:
        await client.aclose()
    return {"bytes": size, "ms": {k: statistics.median(v) for k, v in t.items()},
            "ms_all": t}


def _scorer_rss(ctx: BenchContext, env: dict[str, str], version: int, tag: str,
                wait_s: float) -> tuple[float | None, str | None]:
    """RSS of a scorer that loaded ``version``, and the last error it reported if it did not."""
    from ops.processes import scorer_process
    from ops.services import free_port

    port = free_port()
    log = ctx.logs / f"scorer-rss-{tag}.log"
    scorer = ctx.track(scorer_process(env, port, log))
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            info = httpx.get(f"http://127.0.0.1:{port}/model", timeout=5).json()
            if info.get("model_version") == f"v{version}":
                time.sleep(1.0)  # the previous bytes are released after the swap
                return (rss_mib(scorer.proc.pid) if scorer.proc is not None else None), None
            time.sleep(0.2)
        errors = [line for line in scorer.log_tail(200).splitlines() if "failed" in line]
        return None, (errors[-1].split(": ", 1)[-1] if errors else "no model after "
                      f"{wait_s:g} s")
    finally:
        scorer.stop()


def run(ctx: BenchContext) -> Section:
    """Time snapshot, encode, publish and load per size; measure the scorer's memory."""
    from ops.services import free_port

    w = ctx.workload()
    lists = w.lists[: ctx.pick(1_000, 300)]
    reps = ctx.pick(5, 2)
    section = Section("snapshots and scorer memory")
    bits_list = BITS if not ctx.quick else (18, 22)
    noop_port = free_port()
    noop = ctx.track(ModuleProcess("bench.noop_app", ["--port", str(noop_port)],
                                   ctx.logs / "snapshots-noop.log").start())
    wait_http(f"http://127.0.0.1:{noop_port}/healthz", 30, noop.alive)
    noop_rss = rss_mib(noop.pid or 0)
    noop.stop()
    for bits in bits_list:
        ctx.say(f"snapshots: 2^{bits} weights, {reps} publishes")
        trainer = new_trainer(bits)
        for ex in lists:
            trainer.learn_list(ex)
        env = ctx.deployment(f"snap{bits}")
        timed = asyncio.run(_time_store(env["STREAMRANK_REDIS_URL"],
                                        env["STREAMRANK_REDIS_PREFIX"], trainer, reps))
        version = reps  # a fresh deployment: versions 1..reps, the last is current
        rss, error = _scorer_rss(ctx, env, version, str(bits), 20.0)
        note = ""
        if rss is None:  # say why, then measure with a timeout that lets the read finish
            ctx.say(f"snapshots: the scorer did not load 2^{bits} with the default settings "
                    f"({error}); again with STREAMRANK_REDIS_TIMEOUT_S={LONG_TIMEOUT_S}")
            rss, _ = _scorer_rss(ctx, {**env, "STREAMRANK_REDIS_TIMEOUT_S": str(LONG_TIMEOUT_S)},
                                 version, f"{bits}-long-timeout", 60.0)
            note = (f"not loaded with the default Redis timeout ({error}); measured with "
                    f"STREAMRANK_REDIS_TIMEOUT_S={LONG_TIMEOUT_S}")
        raw = (1 << bits) * 4  # the float32 weights alone
        section.details[f"bits{bits}"] = {**timed, "raw_weight_bytes": raw,
                                          "scorer_rss_mib": rss, "scorer_load_error": error}
        ms = timed["ms"]
        mib = 1 << 20
        section.figures += [
            Figure(f"2^{bits}: snapshot size", "MiB", timed["bytes"] / mib, "raw float32 weights",
                   raw / mib),
            Figure(f"2^{bits}: take + publish (worker)", "ms", ms["snapshot"] + ms["publish"],
                   "Redis SET of the bytes", ms["redis_set"],
                   note="take = weights from the FTRL state; publish = encode + Lua script"),
            Figure(f"2^{bits}: read + decode (scorer)", "ms", ms["load"],
                   "Redis GET of the bytes", ms["redis_get"]),
            Figure(f"2^{bits}: scorer memory (RSS)" + (" [loads only with a longer Redis "
                   "timeout]" if note else ""), "MiB", rss, "no-op app", noop_rss, note=note),
        ]
        del trainer
    section.details["noop_rss_mib"] = noop_rss
    return section
