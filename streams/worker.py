"""``streamrank worker``: run the stream processors and the learner.

Creates the topics when they are missing, then runs the Faust app until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import faust

from monitor.worker import attach_monitor
from ops.security import kafka_python_options
from ops.settings import WorkerSettings
from streams.admin import ensure_topics
from streams.app import build_app
from streams.topics import Topics

__all__ = ["add_parser", "run", "run_worker"]


def run_worker(settings: WorkerSettings, loglevel: str = "info") -> None:
    """Ensure the topics exist, then run the worker in the foreground (does not return)."""
    logging.basicConfig(level=loglevel.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)  # the admin client's chatter
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    if settings.dense:
        import torch

        # the learner's batches are small: one thread, no contention with the streams
        torch.set_num_threads(1)
    counts = ensure_topics(settings.kafka_bootstrap_servers, Topics(settings.topic_prefix),
                           settings.topic_partitions, settings.topic_replication_factor,
                           **kafka_python_options(settings))
    app = build_app(settings, partitions=counts)
    attach_monitor(app, settings)  # quality, drift, alarms: monitor/worker.py
    worker = faust.Worker(app, loglevel=loglevel, redirect_stdouts=False)
    worker.execute_from_commandline()


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``streamrank worker``."""
    p = subparsers.add_parser(
        "worker", help="run the stream processors and the online learner",
        description="Consume items, impressions and interactions from Kafka, keep history "
        "and the catalog, join clicks to their lists, learn, and publish snapshots to "
        "Redis. Configured by STREAMRANK_ environment variables (see README).")
    p.add_argument("--log-level", default="info",
                   choices=["debug", "info", "warning", "error"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Entry point of ``streamrank worker``."""
    run_worker(WorkerSettings(), loglevel=args.log_level)
    return 0
