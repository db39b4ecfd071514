"""Online quality by progressive validation, over sliding windows of the stream.

Each labelled list is scored *before* the learner learns from it (progressive
validation: the model has seen only what came earlier), by up to three rankers:

* ``learner``: the learner's model before it learned the list (the logits of the
  trainer's own forward pass, ``learner.trainer.Learned``);
* ``served``: the model the scorer serves, when that is another version (serving is
  pinned); otherwise the same scores as ``learner``;
* ``upstream``: the upstream engine's order (the ``upstream_rank`` feature), the baseline.

Per list and ranker, with ``c`` the interacted item (label 1) and ``r`` its rank in the
ranker's order (ties broken by the served position):

* **MRR**: ``1 / r``; **NDCG**: ``1 / log2(r + 1)`` (one relevant item, so IDCG = 1);
* **AUC**: the share of the list's other items ranked below ``c`` (ties count half);
* **log-loss**: ``-log p_c`` of the softmax over the list (the model's choice
  probabilities; upstream gives no probabilities, so its figure is the uniform choice's,
  ``log n``);
* **calibration** (learner only): the softmax probability of the model's top item
  (predicted) against whether that item was the one chosen (observed), and the expected
  calibration error over ten bins of every item's probability (Naeini et al., AAAI 2015).

Served lists' click-through rate (clicks per list) is kept per arm, ``reranked`` (served
by a model version) and ``upstream`` (served in the upstream order or degraded), over the
last ``window`` lists of each arm.

Examples
--------
>>> import numpy as np
>>> w = QualityWindow(window=100)
>>> for i in range(3):  # the model puts the chosen item (index 2) first, upstream last
...     _ = w.on_labeled(labels=np.array([0., 0., 1.]), positions=np.array([1, 2, 3]),
...                      scores={"learner": np.array([0., 1., 3.]),
...                              "upstream": np.array([3., 2., 1.])})
>>> s = w.summary()
>>> s["mrr_learner"], round(s["mrr_upstream"], 3), s["auc_learner"], s["auc_upstream"]
(1.0, 0.333, 1.0, 0.0)
>>> round(s["logloss_learner"], 3), round(s["logloss_upstream"], 3)
(0.17, 1.099)
>>> w.on_shown("imp-1", arm="reranked"); w.on_shown("imp-2", arm="reranked")
>>> w.on_click("imp-1")
>>> w.summary()["ctr_reranked"], w.summary()["ctr_upstream"]
(0.5, None)
"""

from __future__ import annotations

import math
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ARMS", "CALIBRATION_BINS", "FIGURES", "RANKERS", "QualityWindow", "list_figures"]

#: Who is scored: the learner's model, the served model, the upstream order.
RANKERS = ("learner", "served", "upstream")
#: The arms of served lists.
ARMS = ("reranked", "upstream")
#: Bins of the expected calibration error.
CALIBRATION_BINS = 10

F64 = npt.NDArray[np.float64]


def _softmax(s: F64) -> F64:
    e = np.exp(s - s.max())
    return e / e.sum()  # type: ignore[no-any-return]


#: The figures of one list for one ranker, in the order of a row's keys.
FIGURES = ("rr", "ndcg", "auc", "logloss")
# a row's keys per ranker, formatted once
_ROW_KEYS = {name: tuple(f"{k}_{name}" for k in FIGURES) for name in RANKERS}


def _figures(s: F64, c: int, above: npt.NDArray[np.bool_], probabilities: bool
             ) -> tuple[tuple[float, float, float, float], F64 | None]:
    """:data:`FIGURES` of one list for one ranker, and the softmax over the list (``None``
    without ``probabilities``): ``s`` the ranker's scores, ``c`` the chosen item's index
    and ``above`` whether each item was served above it. Integer counts and the same
    floating-point operations as ever, so the figures are bit-equal to the per-figure sums
    they replace.

    >>> above = np.array([1, 2, 3]) < 3
    >>> _figures(np.array([0.2, 0.9, 0.1]), 2, above, False)
    ((0.3333333333333333, 0.5, 0.0, 1.0986122886681098), None)
    >>> _figures(np.array([1.0, 1.0]), 1, np.array([True, False]), True)[0][:3]  # a tie
    (0.5, 0.6309297535714575, 0.5)
    """
    n = s.shape[0]
    if s.shape != above.shape:
        raise ValueError(f"{n} scores for a list of {above.shape[0]}")
    sc = s[c]
    eq = s == sc
    ties = int(np.count_nonzero(eq))  # with the chosen item (none if its score is NaN)
    # rank: items strictly better, plus those tied and shown above (served position);
    # with no tie, the chosen item is the only one equal and is not above itself
    rank = int(np.count_nonzero(s > sc)) + 1
    if ties > 1:
        rank += int(np.count_nonzero(eq & above))
    below = int(np.count_nonzero(s < sc)) + 0.5 * (ties - 1)
    p = _softmax(s) if probabilities else None
    pc = float(p[c]) if p is not None else 1.0 / n
    return ((1.0 / rank, 1.0 / math.log2(rank + 1), below / (n - 1) if n > 1 else math.nan,
             float(-math.log(max(pc, 1e-12)))), p)


def list_figures(scores: F64, labels: F64, positions: npt.ArrayLike,
                 probabilities: bool = True) -> dict[str, float]:
    """MRR, NDCG, AUC and log-loss of one list for one ranker (see the module doc).

    >>> f = list_figures(np.array([0.2, 0.9, 0.1]), np.array([0., 0., 1.]), [1, 2, 3])
    >>> f["rr"], round(f["ndcg"], 3), f["auc"]
    (0.3333333333333333, 0.5, 0.0)
    """
    c = int(np.argmax(labels))
    pos = np.asarray(positions)
    figures, _ = _figures(np.asarray(scores), c, pos < pos[c], probabilities)
    return dict(zip(FIGURES, figures))


class QualityWindow:
    """Progressive-validation figures over the last ``window`` labelled lists.

    Parameters
    ----------
    window
        Lists (per arm, for the click-through rate) the figures are computed over.
    """

    def __init__(self, window: int = 1000) -> None:
        self.window = window
        self._lists: deque[dict[str, float]] = deque(maxlen=window)
        # (probabilities, labels) of the learner's lists, for the calibration error
        self._calib: deque[tuple[F64, F64]] = deque(maxlen=window)
        self._shown: dict[str, deque[str]] = {arm: deque() for arm in ARMS}
        self._clicks: OrderedDict[str, list[Any]] = OrderedDict()  # id -> [arm, clicks]
        #: Labelled lists seen in all.
        self.labeled = 0

    def on_labeled(self, labels: F64, positions: npt.ArrayLike,
                   scores: Mapping[str, F64]) -> dict[str, float]:
        """Score one labelled list (before it is learned from); its figures.

        ``scores`` maps ranker name to the list's scores; ``served`` defaults to
        ``learner``'s when absent. A ranker given the very array of one scored before
        (``served`` while it is the learner) gets that one's figures, not a second count.
        """
        if "served" not in scores and "learner" in scores:
            scores = {**scores, "served": scores["learner"]}
        c = int(labels.argmax())
        pos = np.asarray(positions)
        above = pos < pos[c]
        # figures by score array (and whether they are probabilities): the same array
        # gives the same figures
        done: dict[tuple[int, bool], tuple[tuple[float, float, float, float], F64 | None]] = {}
        learner_p: F64 | None = None
        row: dict[str, float] = {}
        for name, s in scores.items():
            probabilities = name != "upstream"
            key = (id(s), probabilities)
            result = done.get(key)
            if result is None:
                result = done[key] = _figures(np.asarray(s, dtype=np.float64), c, above,
                                              probabilities)
            keys = _ROW_KEYS.get(name) or tuple(f"{k}_{name}" for k in FIGURES)
            row.update(zip(keys, result[0]))
            if name == "learner":
                learner_p = result[1]
        if learner_p is not None:  # the softmax of the learner's scores, computed once
            top = int(learner_p.argmax())
            row["pred_top"] = float(learner_p[top])
            row["obs_top"] = float(labels[top] > 0)
            self._calib.append((learner_p, (labels > 0).astype(np.float64)))
        self._lists.append(row)
        self.labeled += 1
        return row

    def on_shown(self, impression_id: str, arm: str) -> None:
        """Count one served list of ``arm`` (``reranked`` or ``upstream``)."""
        q = self._shown[arm]
        q.append(impression_id)
        self._clicks[impression_id] = [arm, 0]
        if len(q) > self.window:
            self._clicks.pop(q.popleft(), None)

    def on_click(self, impression_id: str) -> None:
        """Count one click on a served list (ignored when the list left the window)."""
        entry = self._clicks.get(impression_id)
        if entry is not None:
            entry[1] += 1

    def ctr(self, arm: str) -> float | None:
        """Clicks per served list of ``arm`` over its window (``None`` before any)."""
        ids = self._shown[arm]
        if not ids:
            return None
        return sum(self._clicks[i][1] for i in ids if i in self._clicks) / len(ids)

    def ece(self) -> float | None:
        """Expected calibration error of the learner's probabilities over the window."""
        if not self._calib:
            return None
        p = np.concatenate([c[0] for c in self._calib])
        y = np.concatenate([c[1] for c in self._calib])
        bins = np.minimum((p * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        count = np.bincount(bins, minlength=CALIBRATION_BINS)
        gap = np.abs(np.bincount(bins, p, CALIBRATION_BINS) - np.bincount(bins, y, CALIBRATION_BINS))
        return float(gap.sum() / count.sum())

    def summary(self) -> dict[str, float | int | None]:
        """Window means: ``{mrr,ndcg,auc,logloss}_{ranker}``, ``pred_top``, ``obs_top``,
        ``ece``, ``ctr_{arm}`` and ``lists`` (None where there is nothing yet)."""
        out: dict[str, float | int | None] = {"lists": len(self._lists)}
        for ranker in RANKERS:
            for fig, key in (("mrr", "rr"), ("ndcg", "ndcg"), ("auc", "auc"),
                             ("logloss", "logloss")):
                vals = [r[f"{key}_{ranker}"] for r in self._lists
                        if f"{key}_{ranker}" in r and not math.isnan(r[f"{key}_{ranker}"])]
                out[f"{fig}_{ranker}"] = float(np.mean(vals)) if vals else None
        for key in ("pred_top", "obs_top"):
            vals = [r[key] for r in self._lists if key in r]
            out[key] = float(np.mean(vals)) if vals else None
        out["ece"] = self.ece()
        for arm in ARMS:
            out[f"ctr_{arm}"] = self.ctr(arm)
        return out

    def reset(self) -> None:
        """Forget the labelled lists (after a switch of the served model, say)."""
        self._lists.clear()
        self._calib.clear()
