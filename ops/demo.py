"""``streamrank demo``: the whole system on one machine, with simulated shoppers.

Nothing to configure: it reuses a Kafka broker and a Redis server where the
``STREAMRANK_`` addresses answer, else starts a local single-node Apache Kafka (jars
resolved by Maven on first use) and a local Redis; then the worker and the scorer as
subprocesses, exactly as an operator would run them; then a traffic simulator whose
shoppers have hidden tastes and click with a position bias. Half of the searches are
served in the upstream engine's order, half re-ranked by ``POST /rank``; the console
shows both arms' click-through rates as the model learns. Ctrl-C stops everything.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from ops.processes import ServiceProcess, scorer_process, worker_process
from ops.services import ensure_services, free_port
from ops.settings import CommonSettings
from ops.simulator import Simulator, TrafficStats, run_traffic
from streams.producer import EventProducer

__all__ = ["add_parser", "run"]


def _say(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamrank demo``."""
    p = subparsers.add_parser(
        "demo", help="run the whole system locally with simulated traffic",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=120.0,
                   help="seconds of simulated traffic (default: 120)")
    p.add_argument("--events", type=int, default=0,
                   help="stop after this many events (impressions and interactions) instead "
                        "of after --duration (0: no limit)")
    p.add_argument("--users", type=int, default=200, help="simulated shoppers (default: 200)")
    p.add_argument("--items", type=int, default=300, help="catalog size (default: 300)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the simulation")
    p.add_argument("--sessions", type=int, default=64,
                   help="shoppers' sessions open at once: their searches interleave, so one "
                        "shopper searches again about sessions/rate seconds later, not "
                        "back to back (default: 64)")
    p.add_argument("--rate", type=float, default=40.0,
                   help="searches per second to aim for (default: 40, about 90 events a "
                        "second: what one worker keeps up with on a 2-core machine that "
                        "also runs the broker, Redis and the scorer)")
    p.add_argument("--upstream-share", type=float, default=0.5,
                   help="share of searches served in the upstream order (default: 0.5)")
    p.add_argument("--workdir", type=Path, default=Path(".streamrank/demo"),
                   help="folder for local Kafka/Redis data and the services' logs")
    p.add_argument("--port", type=int, default=0, help="scorer port (default: a free one)")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.set_defaults(func=run)


class _Ranker:
    """``rank_fn`` for the simulator: POST /rank over one keep-alive connection."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=10.0)
        self.degraded = 0
        self.calls = 0
        self.model_version: str | None = None

    def __call__(self, body: dict[str, Any]) -> tuple[Sequence[str], str]:
        resp = self.client.post("/rank", content=orjson.dumps(body),
                                headers={"content-type": "application/json"})
        resp.raise_for_status()
        data = resp.json()
        self.calls += 1  # each logs one impression
        self.degraded += bool(data["degraded"])
        self.model_version = data["model_version"]
        return [it["item_id"] for it in data["items"]], data["impression_id"]


def oracle_share(stats: TrafficStats, recent: bool) -> float:
    """Share of the oracle's NDCG@10 gain over the upstream order that re-ranking reaches.

    The simulator knows the true relevance, so the oracle order has NDCG@10 = 1:
    ``(reranked - upstream) / (1 - upstream)``.

    >>> class Arm:
    ...     def __init__(self, v): self.mean_ndcg = self.recent_ndcg = v
    >>> class Stats:
    ...     upstream, reranked = Arm(0.5), Arm(0.9)
    >>> round(oracle_share(Stats(), recent=False), 2)
    0.8
    """
    up, rr = stats.upstream, stats.reranked
    a, b = (up.recent_ndcg, rr.recent_ndcg) if recent else (up.mean_ndcg, rr.mean_ndcg)
    return (b - a) / (1.0 - a) if a < 1.0 else 0.0


def _lift(stats: TrafficStats, recent: bool) -> str:
    up, rr = stats.upstream, stats.reranked
    a, b = (up.recent_ctr, rr.recent_ctr) if recent else (up.ctr, rr.ctr)
    return f"{(b / a - 1) * 100:+.1f}%" if a > 0 else "n/a"


def run(args: argparse.Namespace) -> int:
    """Entry point of ``streamrank demo``."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    workdir: Path = args.workdir.resolve()
    logs = workdir / "logs"
    settings = CommonSettings()
    started: list[ServiceProcess] = []
    stats: TrafficStats | None = None
    n_events = 0
    _say("starting Kafka and Redis (reused when STREAMRANK_ addresses answer; the first run "
         "resolves the Kafka jars with Maven, which takes a minute)")
    try:
        with ensure_services(settings.kafka_bootstrap_servers, settings.redis_url,
                             workdir) as services:
            _say(f"Kafka at {services.kafka_bootstrap_servers}, Redis at {services.redis_url}")
            run_id = f"demo{int(time.time())}{uuid.uuid4().hex[:4]}"
            env = {**services.env(), "STREAMRANK_TOPIC_PREFIX": f"{run_id}.",
                   "STREAMRANK_REDIS_PREFIX": f"{run_id}:"}
            if os.environ.get("STREAMRANK_ADMIN_TOKEN"):
                env["STREAMRANK_ADMIN_TOKEN"] = os.environ["STREAMRANK_ADMIN_TOKEN"]
            try:
                worker = worker_process(env, logs / "worker.log").start()
                started.append(worker)
                port = args.port or free_port()
                _say(f"starting the worker (log {logs / 'worker.log'}) and the scorer on "
                     f"http://127.0.0.1:{port} (log {logs / 'scorer.log'})")
                # the dashboard's rollback control needs the admin token: one for this run
                token = env.setdefault("STREAMRANK_ADMIN_TOKEN", secrets.token_urlsafe(12))
                started.append(scorer_process(env, port, logs / "scorer.log"))
                _say(f"dashboard: http://127.0.0.1:{port}/dashboard (live quality, drift, "
                     f"alarms, rollback; admin token {token})")
                stats, n_events = _simulate(args, env, f"http://127.0.0.1:{port}", run_id, worker,
                                        stop)
            finally:
                # the services' clients first, while Kafka and Redis still answer
                for proc in reversed(started):
                    proc.stop()
    except KeyboardInterrupt:
        _say("interrupted; stopping")
        return 130
    finally:
        _say("stopped the worker, the scorer and any local Kafka/Redis")
    if stats is None:
        return 1
    if args.json:
        print(orjson.dumps(stats.as_dict(), option=orjson.OPT_INDENT_2).decode())
    _say("summary: " + stats.summary())
    _say(f"share of the oracle's NDCG@10 gain over upstream: "
         f"{oracle_share(stats, recent=False):.0%} overall, "
         f"{oracle_share(stats, recent=True):.0%} over the last {stats.window} lists per arm "
         f"({n_events} events)")
    _say(f"reranked CTR vs upstream: {_lift(stats, recent=False)} overall, "
         f"{_lift(stats, recent=True)} over the last {stats.window} lists per arm")
    return 0


def _simulate(args: argparse.Namespace, env: dict[str, str], base_url: str, run_id: str,
              worker: ServiceProcess, stop: threading.Event
              ) -> tuple[TrafficStats | None, int]:
    sim = Simulator(n_users=args.users, n_items=args.items, seed=args.seed, run_id=run_id,
                    concurrent_sessions=args.sessions,
                    clock=lambda: int(time.time() * 1000))
    producer = EventProducer(env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                             env["STREAMRANK_TOPIC_PREFIX"])
    ranker = _Ranker(base_url)
    try:
        for event in sim.catalog_events():
            producer.item(event)
        producer.flush()
        _say(f"sent a catalog of {args.items} products; waiting for the worker to ingest it")
        if not _wait_for_catalog(env, args.items, worker, stop, timeout=180):
            return None, 0
        catalog_sent = producer.sent

        def _events() -> int:
            """Impressions and interactions so far (the scorer logs the re-ranked lists)."""
            return producer.sent - catalog_sent + ranker.calls

        _say(f"worker ready; simulating {args.duration:g} s of searches by {args.users} "
             f"shoppers, {args.upstream_share:.0%} served in the upstream order")
        t0 = time.monotonic()
        deadline = t0 + args.duration
        next_report = [t0 + 5.0]

        def progress(stats: TrafficStats) -> None:
            now = time.monotonic()
            if now >= next_report[0]:
                next_report[0] = now + 5.0
                up, rr = stats.upstream, stats.reranked
                _say(f"{now - t0:5.0f}s  {stats.requests:6d} searches {_events():7d} events  "
                     f"model {ranker.model_version or '-':>6}  CTR upstream "
                     f"{up.recent_ctr:.3f} reranked {rr.recent_ctr:.3f} ({_lift(stats, True)})"
                     f"  NDCG@10 {up.recent_ndcg:.3f} -> {rr.recent_ndcg:.3f} "
                     f"({oracle_share(stats, True):.0%} of the oracle's gain)")
            # pace to the target rate
            ahead = stats.requests / args.rate - (now - t0)
            if ahead > 0:
                stop.wait(ahead)

        stats = run_traffic(sim, ranker, producer, n_requests=10**9, on_progress=progress,
                            upstream_share=args.upstream_share, seed=args.seed,
                            progress_every=10,
                            should_stop=lambda: stop.is_set() or time.monotonic() >= deadline
                            or (args.events > 0 and _events() >= args.events)
                            or not worker.alive())
        return stats, _events()
    finally:
        producer.close(timeout=10)
        ranker.client.close()


def _wait_for_catalog(env: dict[str, str], n_items: int, worker: ServiceProcess,
                      stop: threading.Event, timeout: float) -> bool:
    import redis

    client = redis.Redis.from_url(env["STREAMRANK_REDIS_URL"])
    pattern = f"{env['STREAMRANK_REDIS_PREFIX']}item:*"
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and not stop.is_set():
            if not worker.alive():
                _say("the worker exited:\n" + worker.log_tail())
                return False
            if sum(1 for _ in client.scan_iter(pattern, count=1000)) >= n_items:
                return True
            stop.wait(0.2)
    finally:
        client.close()
    _say(f"the worker did not ingest the catalog in {timeout:g} s; see its log:\n"
         + worker.log_tail())
    return False

