"""Scorer model work in process: ranking ``n`` candidates, ours beside VW and River.

Ours is ``serving.ranking.rank(model, ctx, items, explain=False, user=..., session=...,
catalog=...)``: the shared features, the scoring (one gather, one row sum), the ordering,
exactly what ``POST /rank`` runs after parsing the body and reading the user's and the
session's state, with the states and the catalog the worker built from the same traffic
(``Workload.pipeline``). The references predict the very same candidates from the same
features: the same ``featurize`` call with the same state and catalog (part of their time,
as of ours), turned into their rows (``bench.peers``), one call per candidate as their APIs
work, then sort by score.
All three learned the same labelled lists first. The three run interleaved in rounds, so
a noisy neighbour slows all of them alike; each call is one latency sample (wall clock),
and its thread CPU time is recorded too: on a shared 2-core machine the wall-clock tail
includes preemption by other processes, the CPU time does not.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Any

from bench.context import BenchContext
from bench.ours import new_trainer, rank, rank_items, serving_model
from bench.peers import RiverPeer, VWPeer, coverage_figure, feature_coverage
from bench.results import Figure, Section, Target
from bench.timing import ns_to_ms, summarize
from bench.workload import FEATURE_BITS, rank_cases
from learner.features import FeatureBlock

__all__ = ["SIZES", "run"]

#: Candidates per request.
SIZES = (25, 100, 1000)
#: Hash bits of the model ranked (the deployment's default).
BITS = FEATURE_BITS
#: The issue's goal for 100 candidates.
P99_TARGET_MS = 0.5


def _time_calls(fn: Callable[[Any], Any], cases: list[Any], wall: list[int],
                cpu: list[int]) -> None:
    clock, thread_clock = time.perf_counter_ns, time.thread_time_ns
    for case in cases:
        c0, t0 = thread_clock(), clock()
        fn(case)
        t1, c1 = clock(), thread_clock()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)


def run(ctx: BenchContext) -> Section:
    """Train the three models on the example stream, then time ranking for each size."""
    w = ctx.workload()
    lists = w.lists[: ctx.pick(3_000, 1_000)]
    ctx.say(f"scoring: training ours, VW and River on {len(lists)} labelled lists")
    trainer, vw, river = new_trainer(BITS), VWPeer(bits=BITS), RiverPeer()
    for ex in lists:
        trainer.learn_list(ex)
        assert ex.features is not None
        block = FeatureBlock.from_json(ex.features)
        vw.learn_block(block, ex.labels, ex.weight)
        river.learn_block(block, ex.labels, ex.weight)
    model = serving_model(trainer)
    p = w.pipeline

    def features(case: tuple[Any, ...]) -> FeatureBlock:
        # the very features ours ranks by: the same call, the same state and catalog
        c, items, user, session = case
        return model.features(c, [it.item_id for it in items],
                              base_scores=[it.base_score for it in items], user=user,
                              session=session, items=p.items)

    def peer_rank(peer: VWPeer | RiverPeer, case: tuple[Any, ...]) -> list[Any]:
        return sorted(zip(peer.predict_block(features(case)), range(len(case[1]))),
                      reverse=True)

    section = Section("scorer model work, in process")
    section.details["features"] = feature_coverage()
    section.details["bits"] = BITS
    section.details["trained_lists"] = len(lists)
    rounds = ctx.pick(5, 3)
    for n in SIZES:
        calls = {25: ctx.pick(3_000, 900), 100: ctx.pick(2_000, 600),
                 1000: ctx.pick(300, 90)}[n]
        cases = rank_cases(w, n, count=max(calls // rounds, 1), seed=n)
        ours_cases = [(c, rank_items(ids, scores), p.users.get(c.user_id),
                       p.sessions.get(c.session_id) if c.session_id else None)
                      for c, ids, scores in cases]
        impls: dict[str, tuple[Callable[[Any], Any], list[Any]]] = {
            "ours": (lambda case: rank(model, case[0], case[1], False, user=case[2],
                                       session=case[3], catalog=p.items), ours_cases),
            "VW": (lambda case: peer_rank(vw, case), ours_cases),
            "River": (lambda case: peer_rank(river, case), ours_cases),
        }
        samples: dict[str, list[int]] = {k: [] for k in impls}
        cpu: dict[str, list[int]] = {k: [] for k in impls}
        for fn, cs in impls.values():  # warm-up: caches, first-call costs
            _time_calls(fn, cs[:20], [], [])
        ctx.say(f"scoring: {n} candidates, {rounds} rounds x {len(cases)} requests per "
                f"implementation")
        for _ in range(rounds):
            for name, (fn, cs) in impls.items():
                gc.collect()
                _time_calls(fn, cs, samples[name], cpu[name])
        stats = {k: summarize(ns_to_ms(v)) for k, v in samples.items()}
        cpu_stats = {k: summarize(ns_to_ms(v)) for k, v in cpu.items()}
        section.details[f"n{n}"] = {"wall_ms": stats, "thread_cpu_ms": cpu_stats}
        for q in ("p50", "p99"):
            target = (Target("ours", "<", P99_TARGET_MS, f"< {P99_TARGET_MS} ms")
                      if n == 100 and q == "p99" else None)
            for ref in ("VW", "River"):
                section.figures.append(Figure(
                    f"rank {n} candidates, {q}", "ms", stats["ours"][q], f"{ref}",
                    stats[ref][q], target if ref == "VW" else None))
        section.figures.append(Figure(
            f"rank {n} candidates, p99 of CPU time only", "ms", cpu_stats["ours"]["p99"], "VW",
            cpu_stats["VW"]["p99"], note="thread CPU time: what is left when preemption by "
            "other processes is taken out"))
    section.figures.append(coverage_figure())
    vw.close()
    return section
