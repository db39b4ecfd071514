"""``streamrank dashboard``: the operators' dashboard on its own port.

The scorer serves the same page at ``/dashboard``; this command is for running it apart
(it reads only Redis). ``STREAMRANK_ADMIN_TOKEN`` enables its rollback control.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="streamrank")
>>> _ = add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["dashboard", "--port", "8050"])
>>> args.command, args.host, args.port
('dashboard', '127.0.0.1', 8050)
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pydantic import ValidationError

from ops.settings import ScorerSettings

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``dashboard`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "dashboard", help="serve the model monitor's dashboard (live charts, alarms, rollback)",
        description="Serve the dashboard: live charts of online quality, drift signals, "
                    "versions and alarms, with the rollback control, plus their /metrics. "
                    "Reads STREAMRANK_REDIS_URL and STREAMRANK_REDIS_PREFIX.")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8050, help="TCP port (default 8050)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    import logging

    import uvicorn

    from monitor.app import create_dashboard_app

    try:
        settings = ScorerSettings()
    except ValidationError as exc:
        print(f"streamrank dashboard: bad configuration:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"streamrank dashboard: http://{args.host}:{args.port}/dashboard", flush=True)
    try:
        uvicorn.run(create_dashboard_app(settings), host=args.host, port=args.port,
                    log_level="info", lifespan="on", access_log=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1
    return 0
