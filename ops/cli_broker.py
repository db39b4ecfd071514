"""``streamrank broker``: run a local Kafka broker (and Redis) in the foreground for development.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="streamrank")
>>> _ = add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["broker", "--port", "19092", "--no-redis"])
>>> args.port, args.controller_port, args.redis_port, args.no_redis
(19092, None, 6379, True)
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import time
from pathlib import Path
from types import FrameType

from ops.broker import LocalKafka, LocalKafkaError, kafka_version
from ops.redis_server import LocalRedis, LocalRedisError

__all__ = ["add_parser", "main", "run"]


class _Stop(Exception):
    """Raised by the SIGINT/SIGTERM/SIGHUP handler to leave the foreground loop."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add the ``broker`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "broker",
        help="run a local Kafka broker (and Redis) in the foreground",
        description=(
            "Start a single-node Apache Kafka broker (KRaft) and a Redis server on 127.0.0.1, print the "
            "STREAMRANK_ variables that point other commands at them, and stop both on Ctrl-C or SIGTERM. "
            "The first run resolves the Kafka jars with Maven."
        ),
    )
    parser.add_argument("--port", type=int, default=9092, help="Kafka client port (default: 9092)")
    parser.add_argument(
        "--controller-port", type=int, default=None, help="Kafka KRaft controller port (default: --port + 1)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep the broker's data and logs in DIR/kafka and DIR/redis, so topics survive a restart "
        "(default: a temporary folder, deleted on exit)",
    )
    parser.add_argument("--redis-port", type=int, default=6379, help="Redis port (default: 6379)")
    parser.add_argument("--no-redis", action="store_true", help="start Kafka only")
    parser.add_argument(
        "--json", action="store_true", help="print the addresses as one JSON line on stdout once both are up"
    )
    parser.add_argument(
        "--timeout", type=float, default=90.0, help="seconds to wait for the broker to start (default: 90)"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run ``streamrank broker`` until Ctrl-C or SIGTERM; return the exit code.

    Returns 0 after a requested stop, 1 when a service cannot start or dies.
    """
    # SIGINT too: a shell starts background jobs with SIGINT ignored, and Python keeps that.
    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, _raise_stop) for signum in stop_signals}
    data_dir: Path | None = args.data_dir
    kafka = LocalKafka(
        port=args.port,
        controller_port=args.controller_port,
        data_dir=data_dir / "kafka" if data_dir is not None else None,
    )
    redis = None if args.no_redis else LocalRedis(args.redis_port, data_dir / "redis" if data_dir else None)
    try:
        if redis is not None and _port_taken(redis.port):  # fail before the slow Kafka start
            raise LocalRedisError(
                f"port {redis.port} on 127.0.0.1 is already in use (another Redis?); stop that process, "
                "pass another --redis-port, or --no-redis to use the running one"
            )
        _progress(f"starting Apache Kafka {kafka_version()} on {kafka.bootstrap_servers} ...")
        kafka.start(args.timeout)
        _progress(f"Kafka is up in {kafka.startup_seconds:.1f} s (data: {kafka.data_dir}, log: {kafka.log_path})")
        if redis is not None:
            redis.start()
            _progress(f"Redis is up in {redis.startup_seconds:.2f} s on {redis.url} (log: {redis.log_path})")
        _announce(kafka, redis, as_json=args.json)
        while True:  # the services run in their own process groups; watch that they stay up
            for service in (kafka, redis):
                if service is not None and not service.is_running():
                    _progress(f"{service!r} stopped unexpectedly. Last lines of {service.log_path}:")
                    _progress(service.log_tail())
                    return 1
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        _progress("stopping ...")
        return 0
    except (LocalKafkaError, LocalRedisError) as error:
        _progress(f"error: {error}")
        return 1
    finally:
        for signum in previous:  # a second Ctrl-C or SIGTERM must not cut the shutdown short
            signal.signal(signum, signal.SIG_IGN)
        if redis is not None:
            redis.close()
        kafka.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _progress("stopped")


def main(argv: list[str] | None = None) -> int:
    """Run the subcommand on its own: ``python -m ops.cli_broker [options]``."""
    parser = argparse.ArgumentParser(prog="streamrank")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return run(parser.parse_args(["broker", *(sys.argv[1:] if argv is None else argv)]))


def _announce(kafka: LocalKafka, redis: LocalRedis | None, *, as_json: bool) -> None:
    env = {"STREAMRANK_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    if redis is not None:
        env["STREAMRANK_REDIS_URL"] = redis.url
    if as_json:
        document = {
            "kafka_bootstrap_servers": kafka.bootstrap_servers,
            "kafka_log": str(kafka.log_path),
            "redis_url": redis.url if redis is not None else None,
            "redis_log": str(redis.log_path) if redis is not None else None,
            "env": env,
        }
        print(json.dumps(document), flush=True)
        return
    print(f"Kafka: {kafka.bootstrap_servers}")
    if redis is not None:
        print(f"Redis: {redis.url}")
    print("In another shell, point streamrank at them with:")
    for name, value in env.items():
        print(f"  export {name}={value}")
    print("Press Ctrl-C to stop.", flush=True)


def _port_taken(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


if __name__ == "__main__":
    sys.exit(main())
