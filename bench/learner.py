"""Learner throughput on one example stream: ours beside River FTRL and Vowpal Wabbit.

Every learner learns the same labelled lists with the same features: the records the
worker's join emits (``bench.workload``), each carrying the feature block computed when
its list was shown. Ours decodes each block and learns in batches of the worker's size
(``learn_batch_size``, 256 by default), as the worker's learner does; VW makes one
``learn`` per shown item from its text format, River one ``learn_one`` per shown item
from a dict, both built from the same block (``bench.peers``), which is part of their
cost as decoding is part of ours. An *example* is one shown item with its label, so a
list of 20 candidates is 20 examples for all three. Each first learns 200 lists untimed
(first-call costs such as torch's initialisation), then the three run interleaved in
rounds, each round on a fresh model; the figure is the median round.

To show the peers learn the same task, each also predicts a held-out tail of the stream
after training, and the JSON report carries each model's log-loss on it.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench.context import BenchContext
from bench.ours import new_trainer, serving_model
from bench.peers import RiverPeer, VWPeer, coverage_figure, feature_coverage
from bench.results import Figure, Section, Target
from bench.workload import FEATURE_BITS
from learner.features import FeatureBlock
from serving.ranking import softmax
from streams.examples import LabeledList

__all__ = ["run"]

BITS = FEATURE_BITS
#: Records per learning step: the worker's default (``ops.settings`` ``learn_batch_size``).
BATCH = 256


def _log_loss(predict: Callable[[LabeledList], Sequence[float]],
              lists: Sequence[LabeledList]) -> float:
    total, n = 0.0, 0
    for ex in lists:
        for p, y in zip(predict(ex), ex.labels):
            p = min(max(float(p), 1e-7), 1 - 1e-7)
            total -= math.log(p) if y > 0 else math.log(1 - p)
            n += 1
    return total / max(n, 1)


def _ours(lists: Sequence[LabeledList]) -> tuple[float, Any]:
    trainer = new_trainer(BITS)
    t0 = time.perf_counter()
    for i in range(0, len(lists), BATCH):
        trainer.learn_batch(lists[i:i + BATCH])
    return time.perf_counter() - t0, trainer


def _peer(make: Callable[[], Any], lists: Sequence[LabeledList]) -> tuple[float, Any]:
    peer = make()
    t0 = time.perf_counter()
    for ex in lists:
        peer.learn_block(_block(ex), ex.labels, ex.weight)
    return time.perf_counter() - t0, peer


def _block(ex: LabeledList) -> FeatureBlock:
    assert ex.features is not None, "the workload's records carry their features"
    return FeatureBlock.from_json(ex.features)


def run(ctx: BenchContext) -> Section:
    """Time the three learners on the same lists; compare held-out log-loss."""
    w = ctx.workload()
    holdout = w.lists[-ctx.pick(500, 200):]
    train = w.lists[: len(w.lists) - len(holdout)]
    rows = sum(len(ex.item_ids) for ex in train)
    rounds = ctx.pick(3, 2)
    ctx.say(f"learner: {rounds} rounds of {len(train)} lists ({rows} examples) per learner")
    seconds: dict[str, list[float]] = {"ours": [], "VW": [], "River": []}
    models: dict[str, Any] = {}
    # warm-up, untimed: first-call costs (torch's on the first backward pass, imports)
    _ours(train[:200])
    _peer(RiverPeer, train[:200])
    _peer(lambda: VWPeer(bits=BITS), train[:200])[1].close()
    for r in range(rounds):
        for name in seconds:
            gc.collect()
            if name == "ours":
                dt, model = _ours(train)
            elif name == "VW":
                if "VW" in models:
                    models["VW"].close()
                dt, model = _peer(lambda: VWPeer(bits=BITS), train)
            else:
                dt, model = _peer(RiverPeer, train)
            seconds[name].append(dt)
            models[name] = model
        ctx.say(f"learner: round {r + 1}/{rounds}: " + ", ".join(
            f"{k} {rows / v[-1]:,.0f}/s" for k, v in seconds.items()))
    rate = {k: rows / statistics.median(v) for k, v in seconds.items()}

    served = serving_model(models["ours"])

    def ours_predict(ex: LabeledList) -> Sequence[float]:
        # the served model's list-choice probabilities (softmax of the logits) of the block
        return softmax(served.logits(_block(ex))).tolist()

    loss = {
        "ours": _log_loss(ours_predict, holdout),
        "VW": _log_loss(lambda ex: models["VW"].predict_block(_block(ex)), holdout),
        "River": _log_loss(lambda ex: models["River"].predict_block(_block(ex)), holdout),
    }
    models["VW"].close()
    section = Section("learner throughput (same examples, same features)")
    section.details = {
        "examples": rows, "lists": len(train), "rounds": rounds,
        "seconds": seconds, "examples_per_s": rate, "lists_per_s": {
            k: len(train) / statistics.median(v) for k, v in seconds.items()},
        "holdout_log_loss": loss, "holdout_lists": len(holdout),
        "features": feature_coverage(), "vw_args": VWPeer.arguments(BITS), "batch": BATCH,
    }
    section.figures = [
        Figure("learn, examples/s", "examples/s", rate["ours"], "River FTRL", rate["River"],
               Target("ratio", ">=", 10, ">= 10x River")),
        Figure("learn, examples/s", "examples/s", rate["ours"], "VW", rate["VW"],
               Target("ratio", ">=", 1, ">= 1x VW")),
        Figure("held-out log-loss (lower is better)", "", loss["ours"], "River FTRL",
               loss["River"], note="same task learned: a sanity check, not a target"),
        Figure("held-out log-loss (lower is better)", "", loss["ours"], "VW", loss["VW"]),
        coverage_figure(),
    ]
    return section
