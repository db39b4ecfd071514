"""``streamrank``: one console script, one small module per subcommand.

    streamrank demo      the whole system on embedded defaults, with simulated traffic
    streamrank worker    the stream processors and the online learner
    streamrank serve     the HTTP scorer
    streamrank broker    a local single-node Apache Kafka (and Redis) for development
    streamrank evaluate  offline evaluation on simulated or logged events, against baselines
    streamrank dashboard the model monitor's dashboard (also at the scorer's /dashboard)
    streamrank model     list, roll back, pin or unpin the served version; the audit log

Each subcommand module has ``add_parser(subparsers)`` and ``run(args) -> int``; modules
are imported only when their subcommand runs, so ``streamrank serve`` never imports
the worker's dependencies (faust) and vice versa.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

#: subcommand -> module holding add_parser/run
SUBCOMMANDS: dict[str, str] = {
    "demo": "ops.demo",
    "worker": "streams.worker",
    "serve": "ops.cli_serve",
    "broker": "ops.cli_broker",
    "evaluate": "ops.cli_evaluate",
    "dashboard": "ops.cli_dashboard",
    "model": "ops.cli_model",
    "text-model": "ops.cli_text",
}


def _parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamrank",
        description="Real-time personalised re-ranking of search results, learned online "
        "from every impression, click and purchase. Configuration comes from STREAMRANK_ "
        "environment variables (STREAMRANK_KAFKA_BOOTSTRAP_SERVERS, STREAMRANK_REDIS_URL, "
        "STREAMRANK_TOPIC_PREFIX, ...).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in SUBCOMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=f"(run `streamrank {name} --help`)")
            continue
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the chosen subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command not in SUBCOMMANDS:
        parser = _parser()
        parser.parse_args(argv)  # --help exits here; an unknown command errors here
        parser.print_help()
        return 2
    args = _parser(only=command).parse_args(argv)
    return int(importlib.import_module(SUBCOMMANDS[command]).run(args))


if __name__ == "__main__":
    sys.exit(main())
