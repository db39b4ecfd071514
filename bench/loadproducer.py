"""A load generator for the broker benchmarks: simulated traffic at a fixed rate.

It first simulates ``--pool`` searches and serialises their events (an impression, then
its clicks, add-to-carts and purchases: ``bench.workload.traffic_events``), then sends
``--events`` of them, paced to ``--rate`` events per second (``0``: as fast as it can),
with aiokafka (its record batches are built in C; ``--client kafka-python``, the client of
our producer SDK, builds them in Python and tops out near 3,000 events/s on 2 cores,
below the rate the worker is to be tested at). When the pool runs out it is sent again
with fresh impression and session ids, so every join is new. Events go to
``{prefix}impressions`` and ``{prefix}interactions`` keyed by ``user_id``, as the
contract says.

It prints JSON lines on stdout: ``{"ready": ...}`` when the pool is made, progress, and
a last ``{"done": true, "sent": ..., "seconds": ..., "rate": ...}``.

    python -m bench.loadproducer --bootstrap 127.0.0.1:9092 --prefix t. --events 150000 --rate 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import warnings
from collections.abc import Iterator

__all__ = ["main"]


def _emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def _events(args: argparse.Namespace,
            pool: list[tuple[bool, bytes, bytes]]) -> Iterator[tuple[str, bytes, bytes]]:
    """``(topic, key, value)`` of every event to send: the pool, again and again, each
    round with fresh impression and session ids."""
    topics = (f"{args.prefix}interactions", f"{args.prefix}impressions")
    rid = f"-{args.run_id}-".encode()
    sent, cycle = 0, 0
    while True:
        for is_impression, key, value in pool:
            if sent >= args.events:
                return
            if cycle:
                value = value.replace(rid, b"-%sc%d-" % (args.run_id.encode(), cycle))
            yield topics[is_impression], key, value
            sent += 1
        cycle += 1


class _Pacer:
    """Keeps the sender at ``rate`` events/s (never ahead of ``rate * elapsed``)."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.start = time.monotonic()
        self.sent = 0
        self.next_report = self.start + 5.0

    def ahead(self) -> float:
        """Seconds to wait before sending more; reports progress every 5 s."""
        now = time.monotonic()
        if now >= self.next_report:
            self.next_report = now + 5.0
            _emit(sent=self.sent, seconds=round(now - self.start, 2))
        if self.rate <= 0:
            return 0.0
        return self.sent / self.rate - (now - self.start)

    def done(self) -> None:
        seconds = time.monotonic() - self.start
        _emit(done=True, sent=self.sent, seconds=round(seconds, 3),
              rate=round(self.sent / seconds, 1))


async def _send_async(args: argparse.Namespace, pool: list[tuple[bool, bytes, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5,
                                max_batch_size=256 * 1024, acks=1)
    await producer.start()
    try:
        pacer = _Pacer(args.rate)
        _emit(started=time.time())
        for topic, key, value in _events(args, pool):
            await producer.send(topic, value=value, key=key)  # enqueued; not awaiting the ack
            pacer.sent += 1
            if pacer.sent % 50 == 0:
                wait = pacer.ahead()
                await asyncio.sleep(wait if wait > 0 else 0)
        await producer.flush()
        pacer.done()
    finally:
        await producer.stop()


def _send_sync(args: argparse.Namespace, pool: list[tuple[bool, bytes, bytes]]) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5,
                             batch_size=256 * 1024, acks=1)
    pacer = _Pacer(args.rate)
    _emit(started=time.time())
    for topic, key, value in _events(args, pool):
        producer.send(topic, key=key, value=value)
        pacer.sent += 1
        if pacer.sent % 50 == 0:
            wait = pacer.ahead()
            if wait > 0:
                time.sleep(wait)
    producer.flush(timeout=60)
    pacer.done()
    producer.close(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """Generate the pool, then send at the requested rate."""
    p = argparse.ArgumentParser(prog="python -m bench.loadproducer")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True, help="topic prefix of the deployment")
    p.add_argument("--events", type=int, required=True, help="events to send in all")
    p.add_argument("--rate", type=float, default=0.0, help="events/s (0: unpaced)")
    p.add_argument("--pool", type=int, default=10_000, help="searches simulated up front")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--run-id", default="L0", help="part of impression and session ids")
    p.add_argument("--client", choices=("aiokafka", "kafka-python"), default="aiokafka",
                   help="Kafka client (default aiokafka: kafka-python tops out near 3,000 "
                        "events/s here)")
    args = p.parse_args(argv)

    from bench.workload import N_ITEMS, N_USERS, K, traffic_events
    from ops.simulator import Simulator

    t0 = time.monotonic()
    sim = Simulator(n_users=N_USERS, n_items=N_ITEMS, seed=args.seed, k=K, run_id=args.run_id)
    pool = traffic_events(sim, args.pool)
    _emit(ready=True, pool_events=len(pool), seconds=round(time.monotonic() - t0, 2))
    if args.client == "kafka-python":
        _send_sync(args, pool)
    else:
        asyncio.run(_send_async(args, pool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
