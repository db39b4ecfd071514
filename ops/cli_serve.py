"""``streamrank serve``: run the HTTP scorer under uvicorn.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="streamrank")
>>> _ = add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["serve", "--port", "8081"])
>>> args.command, args.host, args.port, args.log_level
('serve', None, 8081, 'info')
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

# One scorer process is one request thread: BLAS threads (OpenBLAS spins while it waits
# for work) would only take CPU from it. Before numpy is imported; the environment wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pydantic import ValidationError

from ops.settings import ScorerSettings

__all__ = ["add_parser", "run"]

_LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")

_EPILOG = """\
configuration (environment variables):
  STREAMRANK_KAFKA_BOOTSTRAP_SERVERS  Kafka for the served impressions (localhost:9092)
  STREAMRANK_REDIS_URL                Redis holding the model snapshots
                                      (redis://localhost:6379/0)
  STREAMRANK_TOPIC_PREFIX             prefix of the topic names (streamrank.)
  STREAMRANK_HOST, STREAMRANK_PORT    defaults of --host and --port (127.0.0.1, 8000)
  STREAMRANK_MAX_CANDIDATES           most items per POST /rank (1000)
  STREAMRANK_REFRESH_INTERVAL_MS      how often the model version is checked (100)

endpoints: POST /rank, GET /healthz, GET /metrics, GET /model

example:
  streamrank serve --host 0.0.0.0 --port 8000
  curl -s localhost:8000/rank -d '{"user_id": "u-42", "items": [{"item_id": "sku-1"}]}'
"""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to an ``argparse`` subparsers action."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve", help="run the HTTP scorer (POST /rank)",
        description="Serve POST /rank: re-rank search results per user with the newest\n"
                    "model snapshot in Redis, and log every served list to Kafka.\n"
                    "Without Redis or a model it still answers, in the upstream order\n"
                    "(\"degraded\": true).",
        epilog=_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=None,
                        help="interface to listen on (default: STREAMRANK_HOST or 127.0.0.1; "
                             "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=None,
                        help="TCP port (default: STREAMRANK_PORT or 8000)")
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="info",
                        help="uvicorn and streamrank log level (default: info)")
    parser.add_argument("--access-log", action="store_true",
                        help="log every request (off by default: it costs latency)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the scorer until interrupted; the exit status."""
    import logging

    import uvicorn

    from serving.app import create_app

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    try:
        settings = ScorerSettings(**overrides)
    except ValidationError as exc:
        print(f"streamrank serve: bad configuration:\n{exc}", file=sys.stderr)
        return 2
    level = "DEBUG" if args.log_level == "trace" else args.log_level.upper()
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    try:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port,
                    log_level=args.log_level, lifespan="on", access_log=args.access_log)
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        return exc.code if isinstance(exc.code, int) else 1
    return 0
