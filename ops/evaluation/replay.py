"""Progressive validation: replay an event log through the worker's pipeline, score every
served list with every model before any of them learns from it, then let them learn.

Every event goes through one :class:`~streams.pipeline.Pipeline`, the worker's own
logic, so each list's features are computed exactly as the worker computes them, when
its impression arrives, from the state and item counters of that moment. Then:

1. **score**: every model scores the list (the same decoded feature block for all): at
   once when the log knows the list's true relevance (a simulated log; its true NDCG@10
   is counted then), else when its first interaction arrives, before anything of it is
   learned (most lists get none, and need no scores);
2. **learn**: the records the pipeline emits (``shown`` for the list, ``labeled`` for each
   click, cart or purchase joined to it) go to every model in batches of ``batch``, as
   the worker's learn agent applies them; a model never learns from a list before it
   has scored it (Blum, Kalai and Langford, "Beyond Hoeffding: progressive validation",
   COLT 1999);
3. **settle**: a list's outcome (the largest interaction weight per item) is complete
   once ``settle`` more lists have been served; then its metrics are counted, overall and
   in its time window (``every`` served lists). Labels arriving later still train the
   models but are not scored (``late_labels``).

Examples
--------
>>> import io
>>> from ops.simulator import Simulator
>>> from ops.simulator.eventlog import EventLogWriter, read_log, simulate_log
>>> buf = io.StringIO()
>>> _ = simulate_log(Simulator(seed=0), EventLogWriter(buf), n_requests=300)
>>> replay = Replay([make_ranker(m, bits=16) for m in ("upstream", "popularity")],
...                 bits=16, every=100)
>>> result = replay.run(read_log(io.StringIO(buf.getvalue())))
>>> result["counts"]["served"], result["counts"]["labelled_lists"]
(300, 161)
>>> round(result["overall"]["upstream"]["true_ndcg_at_10"], 3)
0.519
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from learner.features import FeatureBlock
from learner.trainer import Trainer
from ops.evaluation.metrics import MetricTotals, PairedTotals, list_metrics, true_ndcg
from ops.evaluation.rankers import OracleRanker, Ranker, TrainerRanker, make_ranker
from ops.simulator.eventlog import LogLine
from streams.examples import LabeledList
from streams.pipeline import Pipeline
from streams.schemas import (
    ImpressionEvent,
    InteractionEvent,
    InvalidEvent,
    ItemEvent,
    decode_event,
)

__all__ = ["Replay", "WindowCallback", "make_ranker"]

F64 = npt.NDArray[np.float64]

#: ``on_window(index, first_list, last_list, {model: summary})``: a window is complete.
WindowCallback = Callable[[int, int, int, dict[str, dict[str, Any]]], None]


@dataclass
class _Served:
    """A served list waiting for its outcome."""

    index: int
    item_ids: list[str]
    scores: dict[str, F64]
    probs: dict[str, F64]
    gains: F64 = field(default_factory=lambda: np.zeros(0))
    #: ``(n,)`` examination probability of each served position, if known.
    examination: F64 | None = None
    #: Features, while the list waits to be scored.
    block: FeatureBlock | None = None
    #: ``(n,)`` true relevance, on a simulated log (what the ``oracle`` ranks by).
    relevance: F64 | None = None


class Replay:
    """Replays a log through the pipeline and a set of models.

    Parameters
    ----------
    rankers
        The models, in report order; names must differ.
    bits
        Log2 of the hashed feature space of the pipeline's features.
    batch
        Records per learning step.
    every
        Served lists per reporting window.
    settle
        Lists served after a list before its outcome is taken as complete.
    on_window
        Called as each window completes.
    examination
        ``examination(positions) -> (n,)`` probabilities that each position was looked at,
        for the IPS metrics of lists whose log line does not carry its own
        (``truth.examination``); ``None``: only those lists get IPS figures.
    """

    def __init__(self, rankers: Sequence[Ranker], *, bits: int = 20, batch: int = 1,
                 every: int = 1000, settle: int = 200,
                 on_window: WindowCallback | None = None,
                 examination: Callable[[npt.NDArray[np.int64]], F64] | None = None) -> None:
        names = [r.name for r in rankers]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must differ, got {names}")
        if batch < 1 or every < 1 or settle < 0:
            raise ValueError("batch and every must be at least 1, settle at least 0")
        self.rankers = list(rankers)
        self.bits = bits
        self.batch = batch
        self.every = every
        self.settle = settle
        self.on_window = on_window
        self.examination = examination
        # the item counters the features read: those of our first model (every trainer
        # counts the same records the same way), or a trainer kept only for them
        trainers = [r.trainer for r in self.rankers if isinstance(r, TrainerRanker)]
        self._counter: Trainer | None = None
        if not trainers:
            self._counter = Trainer(bits=bits, dense=False, position_bias=False)
        counters = trainers[0] if trainers else self._counter
        assert counters is not None
        self.pipeline = Pipeline.in_memory(bits, stats=lambda: counters.stats)
        self.overall = {n: MetricTotals() for n in names}
        #: each other model's per-list difference from the first (the reference)
        self.paired = {n: PairedTotals() for n in names[1:]}
        self.windows: list[dict[str, MetricTotals]] = []
        self._pending: OrderedDict[str, _Served] = OrderedDict()
        self._done_upto = 0  # lists with index < this are settled
        self._reported = 0  # windows passed to on_window
        self._buffer: list[LabeledList] = []
        self._blocks: list[FeatureBlock | None] = []
        self.seconds = {n: {"score": 0.0, "learn": 0.0} for n in names}
        self.counts = {"events": 0, "items": 0, "served": 0, "labelled_records": 0,
                       "labelled_lists": 0, "late_labels": 0, "invalid": 0,
                       "lists_with_truth": 0}
        self.errors: dict[str, int] = {}

    # -- events --------------------------------------------------------------------

    def run(self, lines: Iterable[LogLine]) -> dict[str, Any]:
        """Feed every line, then :meth:`finish`."""
        for line in lines:
            self.feed(line)
        return self.finish()

    def feed(self, line: LogLine) -> None:
        """One log line."""
        self.counts["events"] += 1
        n = self.counts["events"]
        ts = line.ts if line.ts is not None else n
        try:
            if line.topic == "items":
                self.pipeline.on_item(self._decode(ItemEvent, line.value), ts=ts)
                self.counts["items"] += 1
            elif line.topic == "impressions":
                self._on_impression(self._decode(ImpressionEvent, line.value), ts, n,
                                    line.truth)
            else:
                ev = self._decode(InteractionEvent, line.value)
                fx = self.pipeline.on_interaction(ev, ts=ts, source=f"interactions/0/{n}")
                self._records(fx.examples)
        except InvalidEvent as exc:
            self.counts["invalid"] += 1
            key = str(exc).split(":", 1)[0]
            self.errors[key] = self.errors.get(key, 0) + 1

    @staticmethod
    def _decode(schema: Any, value: dict[str, Any]) -> Any:
        # exactly the worker's validation of a record's bytes
        return decode_event(schema, orjson.dumps(value))

    def _on_impression(self, imp: ImpressionEvent, ts: int, n: int,
                       truth: dict[str, Any] | None) -> None:
        fx = self.pipeline.on_impression(imp, ts=ts, source=f"impressions/0/{n}")
        compact = self.pipeline.join.impressions[imp.impression_id]
        block = FeatureBlock.from_json(compact["features"])
        ids: list[str] = compact["item_ids"]
        index = self.counts["served"]
        self.counts["served"] += 1
        window = index // self.every
        while len(self.windows) <= window:
            self.windows.append({r.name: MetricTotals() for r in self.rankers})
        served = _Served(index=index, item_ids=ids, scores={}, probs={},
                         gains=np.zeros(len(ids)))
        relevance = None
        truth = truth or {}
        if len(truth.get("relevance") or []) == len(ids):
            relevance = np.asarray(truth["relevance"], dtype=np.float64)
            self.counts["lists_with_truth"] += 1
        if len(truth.get("examination") or []) == len(ids):
            served.examination = np.asarray(truth["examination"], dtype=np.float64)
        elif self.examination is not None:
            served.examination = self.examination(np.asarray(compact["positions"]))
        served.block = block
        served.relevance = relevance
        if relevance is not None:
            self._score(served)
            for r in self.rankers:
                value = true_ndcg(served.scores[r.name], relevance)
                self.overall[r.name].add_truth(value)
                self.windows[window][r.name].add_truth(value)
        self._pending.pop(imp.impression_id, None)  # a repeated id: the newer list wins
        self._pending[imp.impression_id] = served
        self._records(fx.examples)
        self._settle(upto=index + 1 - self.settle)

    def _score(self, served: _Served) -> None:
        """Every model's scores of a list (once)."""
        if served.block is None:
            return
        for r in self.rankers:
            t0 = time.perf_counter()
            if isinstance(r, OracleRanker):
                scores, probs = r.score_truth(served.relevance, len(served.item_ids))
            else:
                scores, probs = r.score_many(served.item_ids, served.block)
            self.seconds[r.name]["score"] += time.perf_counter() - t0
            served.scores[r.name], served.probs[r.name] = scores, probs
        served.block = None

    def _records(self, records: Sequence[LabeledList]) -> None:
        for rec in records:
            block = None
            if rec.kind == "labeled":
                self.counts["labelled_records"] += 1
                served = self._pending.get(rec.impression_id)
                if served is None:
                    self.counts["late_labels"] += 1
                else:
                    self._score(served)  # before this record reaches any model
                    gains = np.asarray(rec.labels, dtype=np.float64) * rec.weight
                    np.maximum(served.gains, gains, out=served.gains)
                if rec.features is not None:
                    block = FeatureBlock.from_json(rec.features)
            self._buffer.append(rec)
            self._blocks.append(block)
            if len(self._buffer) >= self.batch:
                self._learn()

    def _learn(self) -> None:
        if not self._buffer:
            return
        records, blocks = self._buffer, self._blocks
        self._buffer, self._blocks = [], []
        for r in self.rankers:
            t0 = time.perf_counter()
            r.learn_many(records, blocks)
            self.seconds[r.name]["learn"] += time.perf_counter() - t0
        if self._counter is not None:
            self._counter.learn_batch(records)

    # -- settling and reporting ----------------------------------------------------

    def _settle(self, upto: int) -> None:
        """Count the outcome of every pending list with index < ``upto``."""
        while self._pending:
            key, served = next(iter(self._pending.items()))
            if served.index >= upto:
                break
            del self._pending[key]
            self._count(served)
        self._done_upto = max(self._done_upto, upto)
        while (self._reported + 1) * self.every <= self._done_upto:
            self._report(self._reported)

    def _count(self, served: _Served) -> None:
        if not (served.gains > 0).any():
            return
        self.counts["labelled_lists"] += 1
        window = self.windows[served.index // self.every]
        reference = None
        for r in self.rankers:
            m = list_metrics(served.scores[r.name], served.gains, served.probs[r.name],
                             examination=served.examination)
            self.overall[r.name].add(m)
            window[r.name].add(m)
            if reference is None:
                reference = m
            else:
                self.paired[r.name].add(reference, m)

    def _report(self, w: int) -> None:
        self._reported = w + 1
        if self.on_window is not None and w < len(self.windows):
            last = min((w + 1) * self.every, self.counts["served"]) - 1
            self.on_window(w, w * self.every, last,
                           {n: t.summary() for n, t in self.windows[w].items()})

    def finish(self) -> dict[str, Any]:
        """Apply what is left, settle every list, and return the results."""
        self._learn()
        self._settle(upto=self.counts["served"] + 1)
        while self._reported < len(self.windows):
            self._report(self._reported)
        for r in self.rankers:
            close = getattr(r, "close", None)
            if close is not None:
                close()
        return {
            "models": [r.name for r in self.rankers],
            "counts": dict(self.counts), "invalid_by_field": dict(self.errors),
            "settings": {"bits": self.bits, "batch": self.batch, "every": self.every,
                         "settle": self.settle},
            "overall": {n: t.summary() for n, t in self.overall.items()},
            "paired": {"reference": self.rankers[0].name,
                       "models": {n: t.summary() for n, t in self.paired.items()}},
            "windows": [{"first": w * self.every,
                         "last": min((w + 1) * self.every, self.counts["served"]) - 1,
                         "models": {n: {k: v for k, v in t.summary().items()
                                        if k != "calibration"} for n, t in win.items()}}
                        for w, win in enumerate(self.windows)],
            "seconds": {n: {k: round(v, 3) for k, v in s.items()}
                        for n, s in self.seconds.items()},
        }
