"""What the benchmarks share in one run: options, the example stream, Kafka and Redis.

Kafka and Redis start once, on the first benchmark that needs them (reused when
``STREAMRANK_KAFKA_BOOTSTRAP_SERVERS`` / ``STREAMRANK_REDIS_URL`` are set and answer),
and each benchmark gets its own topics and Redis keys (:meth:`BenchContext.deployment`).
Every process a benchmark starts is registered with :meth:`BenchContext.track` and
stopped by :meth:`BenchContext.close`, whatever happened.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from bench.timing import say
from bench.workload import Workload, make_workload

__all__ = ["BenchContext", "Stoppable"]


class Stoppable(Protocol):
    """A started process (``ops.processes.ServiceProcess`` has this)."""

    def stop(self) -> Any: ...


class BenchContext:
    """Options and shared resources of one benchmark run.

    Parameters
    ----------
    quick
        Smaller samples and shorter loads (about two minutes for the whole suite).
    workdir
        Folder of the services' data and every process's log.
    seed
        Seed of the simulated traffic.
    """

    def __init__(self, quick: bool, workdir: Path, seed: int = 0) -> None:
        self.quick = quick
        self.workdir = workdir
        self.seed = seed
        self.run_id = uuid.uuid4().hex[:6]
        self.logs = workdir / "logs"
        shutil.rmtree(self.logs, ignore_errors=True)  # this run's logs only
        self.logs.mkdir(parents=True, exist_ok=True)
        self._workload: Workload | None = None
        self._services: Any = None
        self._tracked: list[Stoppable] = []

    def pick(self, full: Any, quick: Any) -> Any:
        """``quick`` in a quick run, else ``full``."""
        return quick if self.quick else full

    def say(self, msg: str) -> None:
        """A progress line."""
        say(msg)

    # -- the example stream -----------------------------------------------------------

    def workload(self) -> Workload:
        """The simulated traffic every in-process benchmark uses (made once per run)."""
        if self._workload is None:
            n = self.pick(5_000, 2_000)
            self.say(f"simulating {n} searches for the example stream")
            self._workload = make_workload(n, seed=self.seed)
            self.say(f"example stream: {len(self._workload.lists)} labelled lists, "
                     f"{self._workload.rows} candidate rows")
        return self._workload

    # -- services -----------------------------------------------------------------------

    def services(self) -> Any:
        """Kafka and Redis (``ops.services.Services``), started on first use."""
        if self._services is None:
            from ops.services import ensure_services

            data = self.workdir / "services"
            shutil.rmtree(data, ignore_errors=True)  # a fresh broker: no topics of old runs
            self.say("starting Kafka and Redis (reused where STREAMRANK_ addresses answer)")
            self._services = ensure_services(
                os.environ.get("STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"),
                os.environ.get("STREAMRANK_REDIS_URL"), data, kafka_timeout=120.0)
            self.say(f"Kafka at {self._services.kafka_bootstrap_servers}, "
                     f"Redis at {self._services.redis_url}")
        return self._services

    def deployment(self, name: str, **extra: str) -> dict[str, str]:
        """``STREAMRANK_`` variables of a fresh deployment: its own topics and Redis keys."""
        s = self.services()
        prefix = f"bench{self.run_id}{name}"
        return {**s.env(), "STREAMRANK_TOPIC_PREFIX": f"{prefix}.",
                "STREAMRANK_REDIS_PREFIX": f"{prefix}:", **extra}

    # -- processes ----------------------------------------------------------------------

    def track(self, proc: Stoppable) -> Any:
        """Remember a started process so that :meth:`close` stops it; returns it."""
        self._tracked.append(proc)
        return proc

    def stop_tracked(self) -> None:
        """Stop every tracked process, newest first."""
        while self._tracked:
            proc = self._tracked.pop()
            try:
                proc.stop()
            except Exception as exc:  # keep stopping the others
                say(f"could not stop {proc!r}: {exc}")

    def close(self) -> None:
        """Stop every tracked process, then the services started here."""
        self.stop_tracked()
        if self._services is not None:
            self.say("stopping Kafka and Redis")
            self._services.close()
            self._services = None


def run_guarded(ctx: BenchContext, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` and stop the processes it tracked, even when it fails."""
    try:
        return fn()
    finally:
        ctx.stop_tracked()
