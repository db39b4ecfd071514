"""When does drift become an alarm? A small policy over the windowed quality.

The monitored figure is the learner's *lift*: its windowed MRR minus the upstream order's
MRR on the same lists (:mod:`monitor.quality`). The absolute MRR is no good for this: it
is measured on logged clicks, which favour whatever order the lists were served in, so it
falls on its own as the model learns to move away from the upstream order (the position
bias it corrects for). The lift does not: both orders are scored on the very same lists.
The *reference* is the median lift of the versions recently marked good (a median: the
best of a few noisy windows would sit above the model's true lift); the *bound* is
``(1 - max_drop)`` times the reference, and never below 0 (a model worse than the order
it re-ranks is never acceptable), once a reference exists.

* ``warming``: fewer than ``min_lists`` lists in the window, or no reference yet and no
  better than upstream; nothing is decided.
* ``healthy``: at or above the bound, and no drift detector fired within the last
  window of lists: the current version may be marked good.
* ``suspect``: a detector fired (or the figure is below the bound) but the alarm is not
  confirmed; versions are not marked good meanwhile, so the last good one predates the
  trouble.
* ``alarm``: below the bound ``confirm`` evaluations in a row (one noisy window is not
  enough, with or without a detector's signal).

Without an upstream figure the learner's MRR itself is the monitored figure.

Examples
--------
>>> p = AlarmPolicy(max_drop=0.2, min_lists=10, confirm=3)
>>> p.evaluate({"lists": 5, "mrr_learner": 0.5, "mrr_upstream": 0.3}, labeled=5).state
'warming'
>>> v = p.evaluate({"lists": 50, "mrr_learner": 0.5, "mrr_upstream": 0.3}, labeled=50)
>>> v.state, v.bound, round(v.value, 2)
('healthy', None, 0.2)
>>> p.on_good(v.value)

The MRR fell, but so did upstream's on the same lists: the lift holds, all is well.

>>> v = p.evaluate({"lists": 50, "mrr_learner": 0.4, "mrr_upstream": 0.2}, labeled=60)
>>> v.state, round(v.bound, 2)
('healthy', 0.16)
>>> [p.evaluate({"lists": 50, "mrr_learner": 0.35, "mrr_upstream": 0.3}, labeled=70 + i,
...             fired=["adwin"] if i == 0 else []).state for i in range(3)]
['suspect', 'suspect', 'alarm']
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["AlarmPolicy", "Verdict"]


@dataclass(frozen=True)
class Verdict:
    """One evaluation: the state, the figure, the bound, and why."""

    state: str
    value: float | None
    bound: float | None
    reason: str


class AlarmPolicy:
    """Decides from windowed figures and detector signals (see the module doc).

    Parameters
    ----------
    max_drop
        Relative drop of the lift below the reference that breaches the bound.
    min_lists
        Lists the window must hold before anything is decided.
    confirm
        Consecutive breached evaluations that raise the alarm.
    window
        Lists after a detector's signal during which the state stays ``suspect``.
    keep
        Good marks the reference is the median of.
    """

    def __init__(self, max_drop: float = 0.3, min_lists: int = 200, confirm: int = 3,
                 window: int = 1000, keep: int = 5) -> None:
        self.max_drop = max_drop
        self.min_lists = min_lists
        self.confirm = confirm
        self.window = window
        self._marks: deque[float] = deque(maxlen=keep)
        self.breaches = 0
        self.suspect_since: int | None = None

    @property
    def reference(self) -> float | None:
        """The median lift of the recent good marks, ``None`` before the first."""
        return float(statistics.median(self._marks)) if self._marks else None

    def evaluate(self, summary: Mapping[str, Any], labeled: int,
                 fired: Sequence[str] = ()) -> Verdict:
        """Evaluate the window's ``summary`` after ``labeled`` lists in all; ``fired``:
        the detectors that fired since the last evaluation."""
        mrr = summary.get("mrr_learner")
        upstream = summary.get("mrr_upstream")
        has_upstream = upstream is not None and math.isfinite(upstream)
        if fired:
            self.suspect_since = labeled
        if (summary.get("lists") or 0) < self.min_lists or mrr is None or not math.isfinite(mrr):
            return Verdict("warming", mrr, None, "too few lists in the window")
        value = mrr - upstream if has_upstream else mrr
        figure = "MRR lift over upstream" if has_upstream else "MRR"
        ref = self.reference
        if ref is None:
            self.breaches = 0
            if has_upstream and value <= 0:
                return Verdict("warming", value, None, "the model is not above upstream yet")
            if self._suspect(labeled):
                return Verdict("suspect", value, None, "a drift detector fired")
            return Verdict("healthy", value, None, "above upstream")
        bound = (1.0 - self.max_drop) * ref
        if has_upstream:
            bound = max(bound, 0.0)
        if value >= bound:
            self.breaches = 0
            if self._suspect(labeled):
                return Verdict("suspect", value, bound, "a drift detector fired")
            return Verdict("healthy", value, bound, "within the bound")
        self.breaches += 1
        why = (f"learner {figure} {value:.3f} below the bound {bound:.3f} "
               f"(reference {ref:.3f}, max drop {self.max_drop:.0%}; learner MRR {mrr:.3f}, "
               f"upstream {upstream if upstream is None else round(upstream, 3)})")
        if self.breaches >= self.confirm:
            after = ", after a drift detector fired" if self._suspect(labeled) else ""
            return Verdict("alarm", value, bound,
                           why + f", {self.breaches} times in a row" + after)
        return Verdict("suspect", value, bound, why)

    def _suspect(self, labeled: int) -> bool:
        if self.suspect_since is not None and labeled - self.suspect_since >= self.window:
            self.suspect_since = None
        return self.suspect_since is not None

    def on_good(self, value: float) -> None:
        """A version was marked good with this lift (a verdict's ``value``)."""
        self._marks.append(value)

    def on_resolved(self) -> None:
        """The alarm was resolved (serving unpinned): start counting afresh."""
        self.breaches = 0
        self.suspect_since = None
