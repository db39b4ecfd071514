"""End-to-end throughput through the real broker and the Faust worker, and consumer lag.

**Sustained load.** ``streamrank worker`` runs as its own process on fresh topics; a load
generator process (``bench.loadproducer``) sends simulated traffic (impressions, then
their clicks, add-to-carts and purchases) at a fixed rate for a fixed time. Every second
the bench samples the topics' end offsets and the worker group's committed offsets
(``bench.offsets``). Figures: the rate the worker committed over the steady part of the
run (after a warm-up) beside the rate offered, the slope of the lag over that part
(events/s it grows by), the largest lag, and how long the worker needed to catch up once
the load stopped. Then the same load, on fresh topics, goes to the no-op Faust worker
(below): the rate any Faust worker keeps up with here, and the CPU the broker and the load
generator take at that rate. What the 2 cores leave, per event, is the most a worker can
spend on each event and keep up.

**Peak (backlog drain).** A backlog is produced before any consumer runs; then the no-op
Faust worker (``bench.noop_worker``: same Faust, same settings, an agent that does
nothing) drains it, then ``streamrank worker`` drains the same backlog. Ours is read from
its committed offsets (least-squares slope while draining), the no-op from its own
progress lines (it would finish between two commits).

**CPU per event.** The machine is shared and has 2 cores for Kafka, the load generator
and the worker, so wall-clock rates move with everything else running. CPU time per
event (``/proc``; the no-op reports its own) does not: ``1000 / (CPU ms per event)`` is
the rate one worker would reach with a whole core to itself.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from bench.context import BenchContext
from bench.offsets import LagProbe, create_topics
from bench.procs import ModuleProcess, cpu_seconds
from bench.results import Figure, Section, Target
from bench.timing import slope

__all__ = ["RATE", "run", "start_load"]

RATE = 5_000
PARTITIONS = 2  # what ops.processes.worker_process gives a local worker


@dataclass(frozen=True)
class _Sample:
    t: float
    end: int
    committed: int
    cpu: float | None

    @property
    def lag(self) -> int:
        return self.end - self.committed


def _look(probe: LagProbe, pid: int | None) -> _Sample:
    s = probe.sample()
    return _Sample(s.t, s.end, s.committed, cpu_seconds(pid) if pid else None)


def start_load(ctx: BenchContext, env: dict[str, str], events: int, rate: float,
               tag: str) -> ModuleProcess:
    """A ``bench.loadproducer`` process sending ``events`` at ``rate``/s (0: unpaced)."""
    proc = ModuleProcess("bench.loadproducer", [
        "--bootstrap", env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
        "--prefix", env["STREAMRANK_TOPIC_PREFIX"], "--events", str(events),
        "--rate", str(rate), "--pool", str(ctx.pick(10_000, 4_000)), "--seed", str(ctx.seed),
        "--run-id", f"{tag}{ctx.run_id}"], ctx.logs / f"producer-{tag}.log")
    ctx.track(proc.start())
    return proc


def _lines(proc: ModuleProcess) -> list[dict[str, Any]]:
    out = []
    for line in proc.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def _wait_line(proc: ModuleProcess, key: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in _lines(proc):
            if key in d:
                return d
        if not proc.alive():
            raise RuntimeError(f"{proc!r} exited:\n{proc.log_tail()}")
        time.sleep(0.1)
    raise TimeoutError(f"{proc!r} did not report {key!r} in {timeout:g} s")


def _watch_until_drained(probe: LagProbe, proc: Any, timeout: float, out: list[_Sample],
                         interval: float = 0.5) -> float | None:
    """Sample until the lag is 0; seconds it took, ``None`` on timeout."""
    pid = proc.proc.pid if getattr(proc, "proc", None) is not None else None
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        s = _look(probe, pid)
        out.append(s)
        if s.end > 0 and s.lag == 0:
            return s.t - t0
        if not proc.alive():
            raise RuntimeError(f"{proc!r} exited:\n{proc.log_tail()}")
        time.sleep(interval)
    return None


def _start_worker(ctx: BenchContext, env: dict[str, str], tag: str) -> Any:
    from ops.processes import worker_process

    return ctx.track(worker_process(env, ctx.logs / f"worker-{tag}.log").start())


def _cpu_ms_per_event(samples: list[_Sample]) -> float | None:
    """Least-squares CPU ms per committed event over the samples where commits moved."""
    pts = [s for s in samples if s.cpu is not None]
    moved = [b for a, b in pairwise(pts) if b.committed != a.committed]
    if len(moved) < 2 or moved[-1].committed == moved[0].committed:
        return None
    return 1000 * slope([s.committed for s in moved], [s.cpu for s in moved])  # type: ignore[misc]


def _durations(ctx: BenchContext) -> tuple[int, int]:
    """Seconds of sustained load, and of warm-up left out of its figures."""
    return ctx.pick(30, 10), ctx.pick(8, 3)


def _others_cpu(ctx: BenchContext, load: ModuleProcess) -> dict[str, int | None]:
    """The pids whose CPU the sustained runs record beside the worker's: the broker (when
    this run started it) and the load generator."""
    kafka = ctx.services().kafka
    return {"broker": kafka.pid if kafka is not None else None, "load": load.proc.pid}


def _cpu_of(pids: dict[str, int | None]) -> dict[str, float | None]:
    """Each process's CPU seconds now (``None`` for an unknown or finished one)."""
    return {k: cpu_seconds(p) if p else None for k, p in pids.items()}


def _cores(samples: list[tuple[float, float | None]]) -> float | None:
    """Cores a process used between the first and the last of ``(t, cpu s)`` samples
    (``None`` with fewer than two, or without its CPU).

    >>> _cores([(0.0, 1.0), (2.0, 2.5)]), _cores([(0.0, None), (1.0, 2.0)]), _cores([])
    (0.75, None, None)
    """
    if len(samples) < 2:
        return None
    (t0, c0), (t1, c1) = samples[0], samples[-1]
    return None if c0 is None or c1 is None or t1 <= t0 else (c1 - c0) / (t1 - t0)


def _warm_up(ctx: BenchContext, env: dict[str, str], probe: LagProbe, consumer: Any,
             tag: str) -> None:
    """A small batch through the consumer first: its group is up and committing."""
    warm = start_load(ctx, env, 500, 0, tag)
    warm.wait(120)
    if _watch_until_drained(probe, consumer, 90, []) is None:
        raise RuntimeError(f"{consumer!r} did not consume the warm-up batch in 90 s:\n"
                           + consumer.log_tail())


def _sustained_noop(ctx: BenchContext, section: Section) -> None:
    """The same load, on fresh topics, consumed by the no-op Faust worker: what any Faust
    worker reaches here, and the CPU the broker and the load generator take at that rate,
    which leaves :func:`_noop_figures` the CPU per event a worker has."""
    seconds, warmup = _durations(ctx)
    env = ctx.deployment("tputnoop")
    prefix = env["STREAMRANK_TOPIC_PREFIX"]
    bootstrap = env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"]
    topics = [f"{prefix}impressions", f"{prefix}interactions"]
    create_topics(bootstrap, topics, PARTITIONS)
    ctx.say(f"throughput: the no-op Faust worker under the same {RATE} events/s")
    noop = ctx.track(ModuleProcess("bench.noop_worker", [
        "--bootstrap", bootstrap, "--prefix", prefix, "--partitions", str(PARTITIONS),
        "--datadir", str(ctx.workdir / "noop-sustained")], ctx.logs / "noop-sustained.log"
    ).start())
    probe = LagProbe(bootstrap, f"{prefix}noop", topics)
    try:
        probe.wait_for_topics(90)
        _warm_up(ctx, env, probe, noop, "nw")
        producer = start_load(ctx, env, RATE * seconds, RATE, "ns")
        _wait_line(producer, "started", 120)
        pids = {"noop": noop.proc.pid, **_others_cpu(ctx, producer)}
        rows: list[tuple[_Sample, dict[str, float | None]]] = []
        t_start = time.monotonic()
        while producer.alive():
            rows.append((_look(probe, None), _cpu_of(pids)))
            time.sleep(1.0)
        t_stop = time.monotonic()
    finally:
        probe.close()
    noop.stop()
    steady = [(s, c) for s, c in rows if t_start + warmup <= s.t <= t_stop]
    if len(steady) < 2:
        raise RuntimeError("the no-op run had fewer than two samples in its steady part")
    t = [s.t for s, _ in steady]
    cores = {k: _cores([(s.t, c[k]) for s, c in steady]) for k in pids}
    section.details["sustained_noop"] = {
        "offered_rate_steady": slope(t, [s.end for s, _ in steady]),
        "committed_rate_steady": slope(t, [s.committed for s, _ in steady]),
        "lag_slope": slope(t, [s.lag for s, _ in steady]),
        "cores": cores,
        "samples_t_end_committed": [(round(s.t - t_start, 2), s.end, s.committed)
                                    for s, _ in rows],
    }


def _sustained(ctx: BenchContext, section: Section) -> None:
    env = ctx.deployment("tput")
    prefix = env["STREAMRANK_TOPIC_PREFIX"]
    bootstrap = env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"]
    seconds, warmup = _durations(ctx)
    ctx.say(f"throughput: starting the worker, then {RATE} events/s for {seconds} s")
    worker = _start_worker(ctx, env, "sustained")
    pid = worker.proc.pid
    probe = LagProbe(bootstrap, f"{prefix}worker", [f"{prefix}impressions",
                                                     f"{prefix}interactions"])
    try:
        probe.wait_for_topics(90)  # the worker creates them
        _warm_up(ctx, env, probe, worker, "w")
        base = _look(probe, pid)
        producer = start_load(ctx, env, RATE * seconds, RATE, "s")
        _wait_line(producer, "started", 120)
        samples: list[_Sample] = [base]
        others = _others_cpu(ctx, producer)
        other_cpu: list[tuple[float, dict[str, float | None]]] = []
        t_start = time.monotonic()
        while producer.alive():
            samples.append(_look(probe, pid))
            other_cpu.append((samples[-1].t, _cpu_of(others)))
            if not worker.alive():
                raise RuntimeError("the worker exited:\n" + worker.log_tail())
            time.sleep(1.0)
        t_stop = time.monotonic()
        done = next((d for d in _lines(producer) if d.get("done")), {})
        ctx.say(f"throughput: load done ({done.get('rate', 0):,.0f} events/s sent); "
                "waiting for the worker to catch up")
        drain = _watch_until_drained(probe, worker, ctx.pick(30, 10), samples)
    finally:
        probe.close()
    steady = [s for s in samples if t_start + warmup <= s.t <= t_stop]
    t = [s.t for s in steady]
    offered = slope(t, [s.end for s in steady])
    consumed = slope(t, [s.committed for s in steady])
    lag_slope = slope(t, [s.lag for s in steady])
    max_lag = max(s.lag for s in samples)
    produced_rate = float(done.get("rate", 0.0))
    cpu_ms = _cpu_ms_per_event(samples)
    section.details["sustained"] = {
        "target_rate": RATE, "seconds": seconds, "warmup_s": warmup,
        "producer": done, "offered_rate_steady": offered, "committed_rate_steady": consumed,
        "lag_slope": lag_slope, "max_lag": max_lag, "drain_after_stop_s": drain,
        "final_lag": samples[-1].lag, "cpu_ms_per_event": cpu_ms,
        "cores": {k: _cores([(t, c[k]) for t, c in other_cpu
                             if t_start + warmup <= t <= t_stop])
                  for k in others},
        "samples_t_end_committed_cpu": [
            (round(s.t - t_start, 2), s.end - base.end, s.committed - base.committed,
             None if s.cpu is None or base.cpu is None else round(s.cpu - base.cpu, 2))
            for s in samples[1:]],
    }
    keeps_up = (produced_rate >= 0.95 * RATE and consumed >= 0.95 * RATE
                and lag_slope <= 0.05 * RATE)
    section.figures += [
        Figure(f"worker rate under {RATE:,} events/s offered", "events/s", consumed,
               "offered", offered, Target("ours", ">=", 0.95 * RATE, f">= {RATE:,}/s, lag flat"),
               passed_override=keeps_up,
               note="offered = slope of the topics' end offsets; ours = of the commits"),
        Figure("lag growth under that load", "events/s", lag_slope, note="slope of the lag"),
        Figure("largest lag", "events", float(max_lag)),
        Figure("catch-up after the load stopped", "s", drain,
               note="n/a: not caught up within the time allowed"),
    ]
    section.details["_cpu_sustained"] = cpu_ms


def _peak(ctx: BenchContext, section: Section) -> None:
    env = ctx.deployment("peak")
    prefix = env["STREAMRANK_TOPIC_PREFIX"]
    bootstrap = env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"]
    backlog = ctx.pick(30_000, 8_000)
    topics = [f"{prefix}impressions", f"{prefix}interactions"]
    create_topics(bootstrap, topics, PARTITIONS)
    ctx.say(f"throughput: producing a backlog of {backlog} events")
    prod = start_load(ctx, env, backlog, 0, "p")
    prod.wait(300)
    produced = next((d for d in _lines(prod) if d.get("done")), {})

    ctx.say("throughput: the no-op Faust worker drains the backlog")
    noop = ctx.track(ModuleProcess("bench.noop_worker", [
        "--bootstrap", bootstrap, "--prefix", prefix, "--partitions", str(PARTITIONS),
        "--datadir", str(ctx.workdir / "noop-worker")], ctx.logs / "noop-worker.log").start())
    probe = LagProbe(bootstrap, f"{prefix}noop", topics)
    noop_samples: list[_Sample] = []
    try:
        probe.wait_for_topics()
        noop_drain = _watch_until_drained(probe, noop, 120, noop_samples, 0.25)
    finally:
        probe.close()
    noop.stop()
    marks = [d for d in _lines(noop) if "n" in d]
    noop_rate = noop_cpu = None
    if len(marks) >= 2 and marks[-1]["t"] > marks[0]["t"]:
        n = marks[-1]["n"] - marks[0]["n"]
        noop_rate = n / (marks[-1]["t"] - marks[0]["t"])
        noop_cpu = 1000 * (marks[-1]["cpu"] - marks[0]["cpu"]) / n

    ctx.say("throughput: streamrank worker drains the same backlog")
    worker = _start_worker(ctx, env, "peak")
    probe = LagProbe(bootstrap, f"{prefix}worker", topics)
    ours_samples: list[_Sample] = []
    try:
        probe.wait_for_topics()
        ours_drain = _watch_until_drained(probe, worker, ctx.pick(120, 60), ours_samples, 0.5)
    finally:
        probe.close()
    worker.stop()
    # Faust commits in steps seconds apart: fit the rate through the samples where the
    # committed offset moved (n/a with fewer than two moves, rather than a flat 0)
    moves = [b for a, b in pairwise(ours_samples)
             if b.committed != a.committed and b.committed > 0]
    ours_rate = slope([s.t for s in moves], [s.committed for s in moves]) if len(
        moves) >= 2 else None
    ours_cpu = _cpu_ms_per_event(ours_samples)
    section.details["peak"] = {
        "backlog": backlog, "producer": produced, "noop_drain_s_incl_start": noop_drain,
        "noop_progress": marks, "noop_cpu_ms_per_event": noop_cpu,
        "ours_drain_s_incl_start": ours_drain, "ours_cpu_ms_per_event": ours_cpu,
        "ours_samples_t_committed_end_cpu": [
            (round(s.t - ours_samples[0].t, 2), s.committed, s.end, s.cpu)
            for s in ours_samples],
    }
    cpu_sustained = section.details.pop("_cpu_sustained", None)
    cpu_left = section.details.get("sustained_noop", {}).get("cpu_left_ms_per_event")
    section.figures += [
        Figure("peak: draining a backlog", "events/s", ours_rate, "no-op Faust worker",
               noop_rate, note="n/a: not drained within the time allowed"),
        Figure("worker CPU per event (sustained run)", "ms", cpu_sustained,
               "no-op Faust worker", noop_cpu,
               note="1000 / this = events/s with a whole core; the target needs <= 0.2 ms"),
        Figure("worker CPU per event (backlog drain)", "ms", ours_cpu, "no-op Faust worker",
               noop_cpu),
    ]
    if cpu_left is not None:
        section.figures.append(Figure(
            f"worker CPU per event (sustained run), against what {RATE:,}/s leaves", "ms",
            cpu_sustained, "the machine's cores less the broker's and the load's, per event",
            cpu_left, note="measured in the no-op run; above 1x, one worker cannot keep up"))


def run(ctx: BenchContext) -> Section:
    """The sustained-load test, then the backlog-drain test."""
    section = Section("worker throughput through the real broker (Kafka, Faust)")
    _sustained(ctx, section)
    ctx.stop_tracked()
    _sustained_noop(ctx, section)
    ctx.stop_tracked()
    _noop_figures(section)
    _peak(ctx, section)
    return section


def _noop_figures(section: Section) -> None:
    """The no-op's rate under the same load, and the CPU per event a worker has left at
    :data:`RATE` once the broker and the load generator took theirs."""
    noop = section.details["sustained_noop"]
    section.figures.append(Figure(
        f"no-op Faust worker under the same {RATE:,} events/s", "events/s",
        noop["committed_rate_steady"], "offered", noop["offered_rate_steady"],
        note=f"its lag grew {noop['lag_slope']:,.0f} events/s"))
    cores = noop["cores"]
    if cores.get("broker") is None or cores.get("load") is None:
        return
    left = (os.cpu_count() or 1) - cores["broker"] - cores["load"]
    noop["cpu_left_ms_per_event"] = 1000 * left / RATE
