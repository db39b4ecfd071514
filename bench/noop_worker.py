"""The broker reference: a Faust worker whose agent does nothing with each event.

Same Faust version, same consumer settings as ``streamrank worker`` (raw serialisers,
earliest offsets, in-memory store, the quick group joins of ``ops.processes``), one agent
over ``{prefix}impressions`` and ``{prefix}interactions`` that only counts events. What it
reaches is the most any Faust worker can consume here; ours does the work on top.

It prints ``{"n": ..., "t": ..., "cpu": ...}`` (events seen, wall-clock time, its CPU
time) at the first event and every 5,000 events, so its own rate and CPU per event can be
read without waiting for its commits.

    python -m bench.noop_worker --bootstrap 127.0.0.1:9092 --prefix t. --partitions 2
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Run the no-op worker until SIGTERM."""
    p = argparse.ArgumentParser(prog="python -m bench.noop_worker")
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--partitions", type=int, default=2)
    p.add_argument("--datadir", default="/tmp/streamrank-bench-noop")
    args = p.parse_args(argv)

    import faust

    logging.basicConfig(level="WARNING")
    app = faust.App(
        f"{args.prefix}noop", broker=[f"kafka://{args.bootstrap}"], store="memory://",
        datadir=args.datadir, topic_partitions=args.partitions, topic_replication_factor=1,
        web_enabled=False, broker_session_timeout=6, broker_heartbeat_interval=0.5,
        consumer_auto_offset_reset="earliest", key_serializer="raw", value_serializer="raw")
    topic = app.topic(f"{args.prefix}impressions", f"{args.prefix}interactions",
                      partitions=args.partitions)

    @app.agent(topic, name="noop")
    async def noop(stream: Any) -> None:
        n = 0
        async for _event in stream.events():
            n += 1
            if n == 1 or n % 5000 == 0:
                print(json.dumps({"n": n, "t": time.time(), "cpu": time.process_time()}),
                      flush=True)

    faust.Worker(app, loglevel="warning", redirect_stdouts=False).execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
