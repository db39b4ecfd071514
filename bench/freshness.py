"""Freshness: from an event being produced to ``POST /rank`` reflecting it.

``streamrank worker`` and ``streamrank serve`` run as their own processes on fresh topics.
Each sample is a shopper the model has never seen: the bench produces the list they were
shown (an impression of 10 items, in upstream order) with the producer SDK, waits a moment
as a shopper would, produces a click on the last item, and from that instant asks
``/rank`` (``"log": false``) every 10 ms until that item comes first for this shopper. The
time is the click's send to the first answer that has it on top. Samples are spaced by a
random pause so they fall anywhere in the snapshot cadence.

The path it measures: Kafka, the worker's join, the examples topic, the learner, the next
snapshot publication (at most every ``STREAMRANK_SNAPSHOT_INTERVAL_MS``), the scorer's
next poll of Redis (every ``STREAMRANK_REFRESH_INTERVAL_MS``) and its load of the snapshot.
Each sample also records when the snapshot that first reflected the click was created,
which splits the time into worker side and scorer side.

It is measured twice: on an otherwise idle deployment, and while a load generator sends
background traffic (``BACKGROUND_RATE`` events/s) to the same topics, so that snapshots
are published on their cadence instead of right after the click.

The reference is one broker hop measured in the same run: a message produced with the
same SDK until a plain consumer receives it.
"""

from __future__ import annotations

import random
import time
import warnings
from typing import Any

import httpx

from bench.context import BenchContext
from bench.offsets import LagProbe
from bench.results import Figure, Section, Target
from bench.timing import summarize

__all__ = ["BACKGROUND_RATE", "run"]

TARGET_P95_MS = 1000.0
N_ITEMS = 10
TIMEOUT_S = 10.0
#: Background traffic of the loaded measurement (events/s): below what one worker
#: sustains here (see ``bench.throughput``), so its lag stays flat.
BACKGROUND_RATE = 200
#: A series stops after this many clicks in a row that never showed within ``TIMEOUT_S``.
MAX_MISSES_IN_A_ROW = 3


def _broker_hop(bootstrap: str, topic: str, samples: int) -> list[float]:
    """Milliseconds from ``send`` to a subscribed consumer receiving, ``samples`` times."""
    from streams.producer import EventProducer

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from kafka import KafkaConsumer

    producer = EventProducer(bootstrap, linger_ms=0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="latest",
                             enable_auto_commit=False, fetch_max_wait_ms=500)
    out: list[float] = []
    try:
        producer.send_raw(topic, b"warm-up")
        producer.flush()
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        consumer.poll(timeout_ms=500)
        for k in range(samples):
            marker = f"hop-{k}".encode()
            t0 = time.perf_counter()
            producer.send_raw(topic, marker)
            producer.flush()
            seen = False
            while not seen and time.perf_counter() - t0 < TIMEOUT_S:
                for records in consumer.poll(timeout_ms=50).values():
                    seen = seen or any(r.value == marker for r in records)
            out.append((time.perf_counter() - t0) * 1000 if seen else TIMEOUT_S * 1000)
            time.sleep(random.uniform(0.0, 0.1))
    finally:
        consumer.close()
        producer.close(timeout=5)
    return out


def _settings() -> dict[str, Any]:
    from ops.settings import ScorerSettings, WorkerSettings

    return {"snapshot_interval_ms": WorkerSettings().snapshot_interval_ms,
            "refresh_interval_ms": ScorerSettings().refresh_interval_ms}


def _samples(ctx: BenchContext, bootstrap: str, prefix: str, port: int, ids: list[str],
             n_samples: int, tag: str, worker: Any, scorer: Any) -> list[dict[str, Any]]:
    """``n_samples`` clicks by new shoppers, each timed until ``/rank`` puts the item first.

    Stops early after ``MAX_MISSES_IN_A_ROW`` clicks in a row were not reflected within
    ``TIMEOUT_S`` (the worker is not keeping up; more samples would only say so again).
    """
    from streams.producer import EventProducer

    events = EventProducer(bootstrap, prefix, linger_ms=0)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0)
    samples: list[dict[str, Any]] = []
    try:
        for k in range(-1, n_samples):  # sample -1 warms up (first snapshot, first load)
            user, session = f"fresh-{ctx.run_id}-{tag}-{k}", f"fs-{ctx.run_id}-{tag}-{k}"
            query, imp_id = f"fresh query {tag} {k}", f"imp-fresh-{ctx.run_id}-{tag}-{k}"
            body = {"user_id": user, "session_id": session, "query": query, "log": False,
                    "items": [{"item_id": i, "base_score": float(N_ITEMS - j)}
                              for j, i in enumerate(ids)]}
            events.impression({"impression_id": imp_id, "user_id": user,
                               "session_id": session, "query": query,
                               "items": [{"item_id": i, "position": j + 1}
                                         for j, i in enumerate(ids)]})
            events.flush()
            first = client.post("/rank", json=body).json()["items"][0]["item_id"]
            time.sleep(random.uniform(0.2, 0.5))  # the shopper looks, then clicks
            t0 = time.time()
            events.interaction({"type": "click", "user_id": user, "session_id": session,
                                "item_id": ids[-1], "impression_id": imp_id})
            events.flush()
            answer: dict[str, Any] = {}
            polls = 0
            while time.time() - t0 < (60.0 if k < 0 else TIMEOUT_S):
                answer = client.post("/rank", json=body).json()
                polls += 1
                if answer["items"][0]["item_id"] == ids[-1]:
                    break
                if not (worker.alive() and scorer.alive()):
                    raise RuntimeError("the worker or the scorer exited:\n"
                                       + worker.log_tail() + "\n" + scorer.log_tail())
                time.sleep(0.01)
            t1 = time.time()
            reflected = answer.get("items", [{}])[0].get("item_id") == ids[-1]
            created = client.get("/model").json().get("created_ms")
            if k >= 0:
                samples.append({
                    "ms": (t1 - t0) * 1000 if reflected else TIMEOUT_S * 1000,
                    "reflected": reflected, "model_version": answer.get("model_version"),
                    "worker_side_ms": (created - t0 * 1000) if created else None,
                    "scorer_side_ms": (t1 * 1000 - created) if created else None,
                    "polls": polls, "upstream_first_before": first == ids[0]})
                ctx.say(f"freshness ({tag}): sample {k + 1}/{n_samples}: "
                        f"{samples[-1]['ms']:.0f} ms ({answer.get('model_version')})")
                if len(samples) >= MAX_MISSES_IN_A_ROW and not any(
                        s["reflected"] for s in samples[-MAX_MISSES_IN_A_ROW:]):
                    ctx.say(f"freshness ({tag}): {MAX_MISSES_IN_A_ROW} clicks in a row not "
                            f"reflected within {TIMEOUT_S:g} s; stopping this series")
                    break
            elif not reflected:
                raise RuntimeError("the warm-up click never reached the rankings:\n"
                                   + worker.log_tail())
            time.sleep(random.uniform(0.0, 0.3))
    finally:
        client.close()
        events.close(timeout=5)
    return samples


def run(ctx: BenchContext) -> Section:
    """Start a worker and a scorer, then time clicks until they show in rankings."""
    from bench.throughput import start_load
    from ops.processes import scorer_process, worker_process
    from ops.services import free_port

    env = ctx.deployment("fresh")
    prefix = env["STREAMRANK_TOPIC_PREFIX"]
    bootstrap = env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"]
    n_samples = ctx.pick(20, 8)
    section = Section("freshness: event produced -> /rank reflects it")

    ctx.say("freshness: starting the worker and the scorer")
    worker = ctx.track(worker_process(env, ctx.logs / "worker-fresh.log").start())
    port = free_port()
    scorer = ctx.track(scorer_process(env, port, ctx.logs / "scorer-fresh.log"))
    probe = LagProbe(bootstrap, f"{prefix}worker", [f"{prefix}interactions"])
    try:
        probe.wait_for_topics(90)  # the worker created its topics
    finally:
        probe.close()
    ids = ctx.workload().sim.catalog.item_ids[:N_ITEMS]
    runs = {"idle": _samples(ctx, bootstrap, prefix, port, ids, n_samples, "idle", worker,
                             scorer)}
    ctx.say(f"freshness: again under {BACKGROUND_RATE} events/s of background traffic")
    background = start_load(ctx, env, int(BACKGROUND_RATE * (n_samples * 2.5 + 60)),
                           BACKGROUND_RATE, "fresh-bg")
    try:
        runs["loaded"] = _samples(ctx, bootstrap, prefix, port, ids, n_samples, "loaded",
                                  worker, scorer)
    finally:
        background.stop()
    ctx.say("freshness: reference, one broker hop")
    ref = summarize(_broker_hop(bootstrap, f"{prefix}probe", n_samples))

    section.details = {"broker_hop_ms": ref, "settings": _settings(),
                       "background_rate": BACKGROUND_RATE}
    for name, samples in runs.items():
        ours = summarize([s["ms"] for s in samples])
        label = "" if name == "idle" else f", under {BACKGROUND_RATE} events/s"
        missed = sum(not s["reflected"] for s in samples)
        section.details[name] = {
            "samples": samples, "ms": ours, "missed": missed, "planned": n_samples,
            "worker_side_ms": summarize([s["worker_side_ms"] for s in samples
                                         if s["worker_side_ms"] is not None]),
            "scorer_side_ms": summarize([s["scorer_side_ms"] for s in samples
                                         if s["scorer_side_ms"] is not None])}
        section.figures += [
            Figure(f"freshness p50{label}", "ms", ours.get("p50"), "one broker hop",
                   ref.get("p50")),
            Figure(f"freshness p95{label}", "ms", ours.get("p95"), "one broker hop",
                   ref.get("p95"), Target("ours", "<", TARGET_P95_MS,
                                          f"< {TARGET_P95_MS:.0f} ms")),
        ]
        if missed:
            section.figures.append(Figure(
                f"clicks not reflected within {TIMEOUT_S:g} s{label} (of {len(samples)} "
                "timed)", "", float(missed), target=Target("ours", "<=", 0, "none"),
                note="each counts as 10 s in the percentiles"))
    return section
