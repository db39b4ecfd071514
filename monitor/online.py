"""The learner's monitor: quality, drift, alarms and rollback, fed by the learn agent.

The learner hands :meth:`LearnerMonitor.on_learned` what each update did with its
records (:class:`~learner.trainer.Learned`): every list with the logits the trainer's
forward pass gave it *before* the update that learned it (progressive validation: the
model has seen only what came earlier), and its decoded features, so the monitor decodes
and scores nothing again (:attr:`learner.log_learner.LogLearner.on_learned`, once per
record). A learn agent that does not report its logits calls
:meth:`LearnerMonitor.before_learning` with each batch before the trainer learns from it,
which decodes and scores the lists itself. A timer calls :meth:`LearnerMonitor.tick`
about once a second. A tick

1. builds one point: the windowed quality (:mod:`monitor.quality`), the detectors'
   counts (:mod:`monitor.drift`), the PSI of every numeric feature and of the learner's
   scores against a reference window (:mod:`monitor.psi`), the weights' norms and the
   last update's size, the learner's and the served version, whether serving is pinned,
   the snapshot's age, the freshness lag (now minus the event time of the newest list
   learned), the consumer lag and the event and dead-letter rates of all workers;
2. writes it to Redis (:mod:`monitor.series`), where the dashboard and ``/metrics`` read it;
3. asks the :class:`~monitor.alarm.AlarmPolicy`: when healthy, marks the newest version
   good (at most every ``good_every_s``); on an alarm, pins serving to the last good
   version (:class:`~learner.registry.ModelRegistry`, audit action ``alarm``), records
   the alarm and why. The alarm stays active until an operator unpins.

While serving is pinned to another version than the learner's newest, lists are also
scored with the pinned model, so the ``served`` figures show the quality users get.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from learner.features import NUMERIC_FEATURES
from learner.registry import ModelRegistry
from learner.snapshot import Snapshot
from learner.store import SnapshotStore
from learner.trainer import Learned, Trainer, block_of
from monitor.alarm import AlarmPolicy, Verdict
from monitor.drift import DETECTORS, LossDrift, WeightMovement
from monitor.psi import StabilityIndex
from monitor.quality import QualityWindow
from monitor.series import COUNTERS, SeriesWriter
from serving.model import ServingModel
from streams.examples import LabeledList

__all__ = ["MONITOR_WHO", "BlockLayout", "LearnerMonitor", "arm_of", "layout_of"]

log = logging.getLogger("streamrank.monitor")

#: Who the audit log names when the alarm pins serving.
MONITOR_WHO = "streamrank-monitor"


def arm_of(model_version: str | None) -> str:
    """The arm of a served list from its impression's ``model_version``.

    >>> arm_of("v12"), arm_of("upstream"), arm_of(None)
    ('reranked', 'upstream', 'upstream')
    """
    if model_version and model_version[:1] == "v" and model_version[1:].isdigit():
        return "reranked"
    return "upstream"


class BlockLayout(NamedTuple):
    """Where the monitor finds its columns in a feature block with given ``names``."""

    #: The columns whose values the stability indexes take (numeric and request features).
    psi_names: tuple[str, ...]
    #: Their indexes in the block.
    psi_index: tuple[int, ...]
    #: The index of ``upstream_rank`` (``None`` if the block has none).
    upstream: int | None


@functools.lru_cache(maxsize=64)
def layout_of(names: tuple[str, ...]) -> BlockLayout:
    """The monitor's columns of a block with these column ``names``, worked out once per
    layout (the blocks of a stream share a few; equal tuples give the same object).

    >>> layout_of(("user_x_item", "item_ctr", "request:price", "upstream_rank"))
    BlockLayout(psi_names=('item_ctr', 'request:price', 'upstream_rank'), psi_index=(1, 2, 3), upstream=3)
    >>> layout_of(("item",)).upstream is None
    True
    """
    psi = [(name, j) for j, name in enumerate(names)
           if name in NUMERIC_FEATURES or name.startswith("request")]
    return BlockLayout(tuple(name for name, _ in psi), tuple(j for _, j in psi),
                       names.index("upstream_rank") if "upstream_rank" in names else None)


class LearnerMonitor:
    """Online quality, drift signals and the drift alarm of one learner.

    Parameters
    ----------
    trainer
        The learner (scored before it learns).
    store, registry
        The snapshots in Redis, and who serves which.
    writer
        Where points and alarms go.
    policy
        When drift is an alarm.
    window
        Lists the quality figures are computed over.
    alarm_enabled
        Pin serving on an alarm (else the alarm is only recorded).
    good_every_s
        Least time between two good marks.
    psi_reference
        Values (items of lists) in each PSI reference window, and in its recent window.
    latest_snapshot
        The learner's newest published snapshot (``SnapshotPublisher.latest``).
    lag, counters
        Callables giving the consumer lag per topic (blocking; run in a thread) and the
        event totals of all workers (async); either may be ``None``.
    clock
        Seconds since the epoch.
    """

    def __init__(self, trainer: Trainer, store: SnapshotStore, registry: ModelRegistry,
                 writer: SeriesWriter, *, policy: AlarmPolicy | None = None,
                 window: int = 1000, alarm_enabled: bool = True, good_every_s: float = 10.0,
                 psi_reference: int = 5000,
                 latest_snapshot: Callable[[], Snapshot | None] = lambda: None,
                 lag: Callable[[], dict[str, float]] | None = None,
                 counters: Callable[[], Any] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.trainer = trainer
        self.store = store
        self.registry = registry
        self.writer = writer
        self.policy = policy if policy is not None else AlarmPolicy(window=window)
        self.quality = QualityWindow(window)
        self.drift = LossDrift()
        self.weights = WeightMovement()
        self.psi_reference = psi_reference
        self.feature_psi: dict[str, StabilityIndex] = {}
        self.score_psi = StabilityIndex(psi_reference, psi_reference)
        self.alarm_enabled = alarm_enabled
        self.good_every_s = good_every_s
        self.latest_snapshot = latest_snapshot
        self.lag = lag
        self.counters = counters
        self.clock = clock
        self._fired: list[str] = []
        self._served: ServingModel | None = None
        self._created_ms: dict[int, int] = {}
        self._last_good = -math.inf
        self._last_counts: tuple[float, dict[str, int]] | None = None
        self._newest_ts: int | None = None
        #: The active alarm (as recorded), ``None`` when there is none.
        self.alarm: dict[str, Any] | None = None
        #: The last verdict of the policy.
        self.verdict: Verdict | None = None

    # -- the stream side (synchronous, in the learn agent) -----------------------------

    def on_learned(self, learned: Sequence[Learned]) -> None:
        """Take an update's records with their lists' logits from before the update.

        The learner's logits are the trainer's (:meth:`Trainer.learn_batch
        <learner.trainer.Trainer.learn_batch>`): each list is scored by the model before
        it learned from that list. The trainer makes one update per batch, so a list's
        logits include none of its own batch; a trainer that learned its lists one after
        another would hand out logits of list ``k`` that include lists ``< k`` of the
        batch, which is still progressive validation (only earlier lists), and fresher.
        A record the trainer skipped or did not learn from (no logits) counts as shown or
        clicked but is not scored. The served model, when it is not the learner's
        newest, scores the lists here. Never raises: the monitor must not stop the
        learner."""
        # each feature's columns of the lists (views of their blocks), in list order
        columns: defaultdict[str, list[npt.NDArray[np.float32]]] = defaultdict(list)
        learner_scores: list[npt.NDArray[np.float64]] = []
        for item in learned:
            try:
                self._observe(item, columns, learner_scores)
            except Exception:  # the monitor must never stop the learner
                log.exception("monitor: could not score record %s", item.record.source)
        # the stability indexes take the batch's values at once (one update per feature)
        try:
            if learner_scores:
                self.score_psi.update(np.concatenate(learner_scores))
            for name, parts in columns.items():
                index = self.feature_psi.get(name)
                if index is None:
                    index = self.feature_psi[name] = StabilityIndex(self.psi_reference,
                                                                    self.psi_reference)
                index.update(np.concatenate(parts))
        except Exception:
            log.exception("monitor: could not update the stability indexes")

    def before_learning(self, records: Sequence[LabeledList]) -> None:
        """Score each record with the current models before the trainer learns it: for a
        learn agent that does not report the trainer's logits (:meth:`on_learned`). It
        decodes and scores each labelled list itself, a second forward pass."""
        learned: list[Learned] = []
        for rec in records:
            item = Learned(rec)
            if rec.kind != "shown" and sum(rec.labels) > 0 and len(rec.labels) >= 2:
                try:
                    block = block_of(rec, self.trainer.bits)
                    item = Learned(rec, block, self.trainer.model.logits(block))
                except Exception:  # the monitor must never stop the learner
                    log.exception("monitor: could not score record %s", rec.source)
            learned.append(item)
        self.on_learned(learned)

    def _observe(self, item: Learned, columns: defaultdict[str, list[npt.NDArray[np.float32]]],
                 learner_scores: list[npt.NDArray[np.float64]]) -> None:
        rec = item.record
        if rec.ts is not None:
            self._newest_ts = max(self._newest_ts or 0, rec.ts)
        if rec.kind == "shown":
            self.quality.on_shown(rec.impression_id, arm_of(rec.model_version))
            return
        if rec.weight == 1.0:  # a click (carts and purchases follow their click)
            self.quality.on_click(rec.impression_id)
        block = item.block
        if block is None or item.logits is None:
            return  # skipped by the trainer (it logs why), or no click, or one item
        labels = np.asarray(rec.labels, dtype=np.float64)
        learner = np.asarray(item.logits, dtype=np.float64)
        scores = {"learner": learner}
        if self._served is not None:
            scores["served"] = np.asarray(self._served.logits(block), dtype=np.float64)
        layout = layout_of(block.names)
        value = block.value
        if layout.upstream is not None:
            scores["upstream"] = value[:, layout.upstream].astype(np.float64)
        row = self.quality.on_labeled(labels, np.asarray(rec.positions), scores)
        self._fired += self.drift.update(row["logloss_learner"])
        learner_scores.append(learner)
        # the PSI columns as rows of the transposed block: views, no copies (with a batch's
        # blocks stacked into one array instead, 1.4 MB in the bench, the sparse trainer
        # page-faulted about 3,000 times per batch in most runs: an allocator effect)
        by_column = value.T
        for name, j in zip(layout.psi_names, layout.psi_index):
            columns[name].append(by_column[j])

    # -- the timer side ----------------------------------------------------------------

    async def tick(self) -> dict[str, Any]:
        """Build and write one point, evaluate the alarm policy and act on it."""
        now = self.clock()
        state = await self.registry.state()
        latest = self.latest_snapshot()
        if latest is not None:
            self._created_ms[latest.version] = latest.created_ms
            self.weights.on_snapshot(latest.version, latest.arrays)
        await self._follow_served(state.current, latest)
        point = self._point(now, state.current, state.pinned, latest)
        point.update(await self._rates(now))
        if self.lag is not None:
            try:
                point["consumer_lag"] = await asyncio.to_thread(self.lag)
            except Exception as exc:
                log.warning("monitor: consumer lag unavailable: %s", exc)
        fired, self._fired = self._fired, []
        verdict = self.verdict = self.policy.evaluate(point, self.quality.labeled, fired)
        point["state"] = verdict.state
        point["bound"] = verdict.bound
        await self._act(verdict, now, state.current, state.pinned, latest, point)
        point["alarm"] = self.alarm is not None
        await self.writer.write_point(point)
        return point

    async def _follow_served(self, current: int | None, latest: Snapshot | None) -> None:
        """Score with the served model too while it is not the learner's newest."""
        if current is None or (latest is not None and current == latest.version):
            self._served = None
            return
        if self._served is not None and self._served.snapshot.version == current:
            return
        snap = await self.store.load(current)
        self._served = ServingModel(snap) if snap is not None else None
        if snap is not None:
            self._created_ms[snap.version] = snap.created_ms

    def _point(self, now: float, current: int | None, pinned: int | None,
               latest: Snapshot | None) -> dict[str, Any]:
        q = self.quality.summary()
        psi = {name: index.value() for name, index in sorted(self.feature_psi.items())}
        finite = [v for v in psi.values() if math.isfinite(v)]
        served_created = self._created_ms.get(current) if current is not None else None
        return {
            "ts_ms": int(now * 1000), "examples": self.trainer.examples,
            "labeled": self.quality.labeled, **q,
            "loss_adwin_mean": self.drift.adwin_mean(),
            **{f"detections_{d}": self.drift.detections[d] for d in DETECTORS},
            "psi": psi, "psi_max": max(finite) if finite else math.nan,
            "psi_score": self.score_psi.value(), **self.weights.figures,
            "learner_version": latest.version if latest is not None else None,
            "served_version": current, "pinned": pinned,
            "snapshot_age_s": now - latest.created_ms / 1000 if latest is not None else math.nan,
            "served_age_s": now - served_created / 1000 if served_created else math.nan,
            "freshness_lag_s": (now - self._newest_ts / 1000
                                if self._newest_ts is not None else math.nan),
        }

    async def _rates(self, now: float) -> dict[str, float]:
        if self.counters is None:
            return {}
        counts: dict[str, int] = await self.counters()
        out = {f"rate_{k}": math.nan for k in COUNTERS}
        if self._last_counts is not None:
            t0, before = self._last_counts
            dt = max(now - t0, 1e-6)
            out = {f"rate_{k}": max(counts.get(k, 0) - before.get(k, 0), 0) / dt
                   for k in COUNTERS}
        self._last_counts = (now, counts)
        return out

    async def _act(self, verdict: Verdict, now: float, current: int | None,
                   pinned: int | None, latest: Snapshot | None, point: dict[str, Any]) -> None:
        if self.alarm is not None:
            # a pinning alarm ends when an operator unpins; a recording one when the
            # quality is back within the bound
            why = ("serving unpinned" if self.alarm["pinned"] and pinned is None else
                   "quality back within the bound" if not self.alarm["pinned"]
                   and verdict.state == "healthy" else None)
            if why is not None:
                await self.writer.resolve_alarm({"ts_ms": int(now * 1000),
                                                 "fired": self.alarm, "reason": why})
                log.warning("monitor: alarm resolved (%s)", why)
                self.alarm = None
                self.policy.on_resolved()
            return
        if verdict.state == "healthy" and pinned is None and latest is not None \
                and now - self._last_good >= self.good_every_s and verdict.value is not None:
            quality = {k: point.get(k) for k in ("mrr_learner", "ndcg_learner", "auc_learner",
                                                 "logloss_learner", "mrr_upstream", "lists")}
            if await self.registry.mark_good(latest.version, {**quality,
                                                              "ts_ms": int(now * 1000)}):
                self.policy.on_good(verdict.value)
                self._last_good = now
        elif verdict.state == "alarm":
            await self._fire(verdict, now, current, pinned)

    async def _fire(self, verdict: Verdict, now: float, current: int | None,
                    pinned: int | None) -> None:
        target = await self.registry.last_good()
        alarm: dict[str, Any] = {
            "ts_ms": int(now * 1000), "reason": verdict.reason, "value": verdict.value,
            "bound": verdict.bound, "reference": self.policy.reference,
            "detections": dict(self.drift.detections), "labeled": self.quality.labeled,
            "from": current, "to": None, "pinned": False}
        if self.alarm_enabled and target is not None and pinned is None:
            await self.registry.pin(target, who=MONITOR_WHO, reason=verdict.reason,
                                    action="alarm")
            alarm.update(to=target, pinned=True)
            log.warning("monitor: ALARM, serving pinned to v%s (was v%s): %s", target,
                        current, verdict.reason)
        else:
            log.warning("monitor: ALARM (serving not pinned: %s): %s",
                        "alarm pinning is off" if not self.alarm_enabled else
                        "no good version kept" if target is None else "already pinned",
                        verdict.reason)
        self.alarm = alarm
        await self.writer.fire_alarm(alarm)
