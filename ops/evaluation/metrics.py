"""Metrics of one scored list, and their running totals.

A list is scored once, when it is served (progressive validation: the model has learned
only from what happened before); its outcome is the *gain* of each item, the largest
interaction weight it got (click 1, add-to-cart 2, purchase 3, nothing 0). The model's
order is by score, ties kept in the served order.

* **MRR**: one over the rank of the best-ranked item with a gain.
* **NDCG@10** (Järvelin and Kekäläinen, "Cumulated gain-based evaluation of IR
  techniques", TOIS 2002) with the gains, graded.
* **AUC**: the share of (engaged, not engaged) item pairs of a list that the order puts
  right, pooled over all lists (pairs, not lists, are the unit).
* **log-loss** of the list-choice probabilities ``p`` (a model's softmax over the list, or
  a pointwise model's ``p_i / sum p``) against the engaged items, each ``1 / #engaged``.
* **ECE**, expected calibration error of the same probabilities: items binned by ``p`` in
  ten equal-width bins, the size-weighted mean of ``|mean p - mean y|`` (Naeini et al.,
  "Obtaining well calibrated probabilities using Bayesian binning", AAAI 2015).
* **true NDCG@10**, on simulated logs: NDCG@10 of the model's order with the hidden true
  relevance as gains, over every served list; the oracle's is 1.

Clicks on a list served in one order are biased towards that order: its top items were
looked at more. A model that keeps the served order gets credit for position bias;
one that moves a relevant item down from an unexamined position loses nothing it could
show. When the log knows each position's examination probability ``e(p)`` (the simulator
writes it), two inverse-propensity-scored figures remove that bias (Joachims, Swaminathan
and Schnabel, "Unbiased learning-to-rank with biased feedback", WSDM 2017): every engaged
item ``i``, served at position ``p_i``, counts with weight ``1 / e(p_i)``, self-normalised
over all engaged items of all lists:

* **MRR (IPS)**: ``sum w_i / rank_i / sum w_i``, the weighted mean reciprocal rank of the
  engaged items in the model's order;
* **NDCG@10 (IPS)**: ``sum w_i g_i d(rank_i) / sum w_i g_i`` with ``d(r) = 1 / log2(r + 1)``
  for ``r <= 10`` and 0 below: the share of the engaged gain that the model's top 10 keeps,
  discounted.

Under a position-based click model, ``P(click_i) = e(p_i) r_i``, both converge to the
same figures computed with true relevance ``r_i`` in place of clicks, whatever order the
log was served in.

Examples
--------
>>> import numpy as np
>>> m = list_metrics(scores=np.array([0.3, 0.9, 0.1]), gains=np.array([0.0, 0.0, 1.0]),
...                  probs=np.array([0.25, 0.5, 0.25]))
>>> round(m.reciprocal_rank, 4), round(m.ndcg, 4), m.pairs, m.concordant
(0.3333, 0.5, 2, 0.0)
>>> round(m.log_loss, 4)
1.3863

With examination ``1 / p``, the item at position 3 (the engaged one) weighs 3:

>>> m = list_metrics(np.array([0.3, 0.9, 0.1]), np.array([0.0, 0.0, 1.0]),
...                  np.array([0.25, 0.5, 0.25]), examination=np.array([1.0, 0.5, 1 / 3]))
>>> m.ips_weight, round(m.ips_rr, 4), round(m.ips_dcg, 4)
(3.0, 1.0, 1.5)
>>> totals = MetricTotals()
>>> totals.add(m)
>>> totals.add(list_metrics(np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5])))
>>> s = totals.summary()
>>> round(s["mrr"], 4), round(s["auc"], 4), s["lists"]
(0.6667, 0.3333, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CALIBRATION_BINS",
    "ListMetrics",
    "MetricTotals",
    "PairedTotals",
    "dcg",
    "list_metrics",
    "model_order",
    "ndcg_at_k",
    "true_ndcg",
]

F64 = npt.NDArray[np.float64]

#: Equal-width bins of the list-choice probability for the calibration error.
CALIBRATION_BINS = 10
#: Probabilities are clipped to this before the log.
EPS = 1e-12


def model_order(scores: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices by descending score, ties kept in the served order.

    >>> model_order([0.5, 1.0, 0.5]).tolist()
    [1, 0, 2]
    """
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable").astype(np.int64)


def dcg(gains_in_order: npt.ArrayLike, k: int = 10) -> float:
    """``sum_p g_p / log2(p + 1)`` over the first ``k`` positions.

    >>> round(dcg([3.0, 0.0, 1.0]), 4)
    3.5
    """
    g = np.asarray(gains_in_order, dtype=np.float64)[:k]
    return float((g / np.log2(np.arange(2, g.size + 2))).sum())


def ndcg_at_k(order: npt.ArrayLike, gains: npt.ArrayLike, k: int = 10) -> float:
    """NDCG@k of an order (indices into ``gains``); 0 when nothing has a gain.

    >>> ndcg_at_k([1, 0], [1.0, 3.0])
    1.0
    """
    g = np.asarray(gains, dtype=np.float64)
    ideal = dcg(np.sort(g)[::-1], k)
    return dcg(g[np.asarray(order)], k) / ideal if ideal > 0 else 0.0


def true_ndcg(scores: npt.ArrayLike, relevance: npt.ArrayLike, k: int = 10) -> float:
    """NDCG@k of the model's order against true relevance (1.0 is the oracle's).

    >>> round(true_ndcg([0.0, 1.0], [0.2, 0.8]), 3), round(true_ndcg([1.0, 0.0], [0.2, 0.8]), 3)
    (1.0, 0.761)
    """
    return ndcg_at_k(model_order(scores), relevance, k)


@dataclass(frozen=True)
class ListMetrics:
    """The figures of one labelled list."""

    reciprocal_rank: float
    ndcg: float
    #: (engaged, not engaged) pairs, and how many the order puts right.
    pairs: int
    concordant: float
    log_loss: float
    #: ``(n,)`` the choice probabilities and the targets, for calibration.
    probs: F64 = field(repr=False)
    targets: F64 = field(repr=False)
    #: Inverse-propensity sums over the engaged items (0 without examination):
    #: ``sum w``, ``sum w / rank``, ``sum w g``, ``sum w g d(rank)``.
    ips_weight: float = 0.0
    ips_rr: float = 0.0
    ips_gain: float = 0.0
    ips_dcg: float = 0.0


def list_metrics(scores: npt.ArrayLike, gains: npt.ArrayLike, probs: npt.ArrayLike,
                 k: int = 10, examination: npt.ArrayLike | None = None) -> ListMetrics:
    """Metrics of one list with at least one gain; arrays in served order (so
    ``examination[j]`` is the probability that the ``j``-th served position was seen)."""
    g = np.asarray(gains, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    engaged = g > 0
    if not engaged.any():
        raise ValueError("a labelled list needs at least one item with a gain")
    order = model_order(scores)
    rank = np.empty(g.size, dtype=np.int64)
    rank[order] = np.arange(1, g.size + 1)
    # pairs (engaged e, not engaged o) put right: rank_e < rank_o; ranks have no ties
    pos, neg = np.sort(rank[engaged]), np.sort(rank[~engaged])
    concordant = float(neg.size * pos.size - np.searchsorted(neg, pos).sum())
    y = engaged / engaged.sum()
    log_loss = float(-(y[engaged] * np.log(np.clip(p[engaged], EPS, 1.0))).sum())
    ips = (0.0, 0.0, 0.0, 0.0)
    if examination is not None:
        w = 1.0 / np.clip(np.asarray(examination, dtype=np.float64)[engaged], EPS, 1.0)
        r, ge = rank[engaged], g[engaged]
        disc = np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)
        ips = (float(w.sum()), float((w / r).sum()), float((w * ge).sum()),
               float((w * ge * disc).sum()))
    return ListMetrics(reciprocal_rank=1.0 / float(rank[engaged].min()),
                       ndcg=ndcg_at_k(order, g, k), pairs=int(pos.size * neg.size),
                       concordant=concordant, log_loss=log_loss, probs=p, targets=y,
                       ips_weight=ips[0], ips_rr=ips[1], ips_gain=ips[2], ips_dcg=ips[3])


class MetricTotals:
    """Running sums of :class:`ListMetrics` (and of true NDCG), for one model and span."""

    def __init__(self) -> None:
        self.lists = 0
        self.rr = self.rr2 = 0.0
        self.ndcg = self.ndcg2 = 0.0
        self.pairs = 0
        self.concordant = 0.0
        self.log_loss = 0.0
        self.bin_n = np.zeros(CALIBRATION_BINS)
        self.bin_p = np.zeros(CALIBRATION_BINS)
        self.bin_y = np.zeros(CALIBRATION_BINS)
        self.served = 0
        self.true_ndcg = self.true_ndcg2 = 0.0
        self.ips = np.zeros(4)  # sums of ips_weight, ips_rr, ips_gain, ips_dcg

    def add(self, m: ListMetrics) -> None:
        """Count one labelled list."""
        self.lists += 1
        self.rr += m.reciprocal_rank
        self.rr2 += m.reciprocal_rank ** 2
        self.ndcg += m.ndcg
        self.ndcg2 += m.ndcg ** 2
        self.pairs += m.pairs
        self.concordant += m.concordant
        self.log_loss += m.log_loss
        b = np.minimum((m.probs * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        self.bin_n += np.bincount(b, minlength=CALIBRATION_BINS)
        self.bin_p += np.bincount(b, weights=m.probs, minlength=CALIBRATION_BINS)
        self.bin_y += np.bincount(b, weights=m.targets, minlength=CALIBRATION_BINS)
        self.ips += (m.ips_weight, m.ips_rr, m.ips_gain, m.ips_dcg)

    def add_truth(self, value: float) -> None:
        """Count one served list's true NDCG@10."""
        self.served += 1
        self.true_ndcg += value
        self.true_ndcg2 += value ** 2

    @staticmethod
    def _mean_se(total: float, squares: float, n: int) -> tuple[float | None, float | None]:
        if n == 0:
            return None, None
        mean = total / n
        var = max(squares / n - mean * mean, 0.0)
        return mean, math.sqrt(var / n) if n > 1 else None

    def summary(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (``None`` where nothing was counted)."""
        mrr, mrr_se = self._mean_se(self.rr, self.rr2, self.lists)
        ndcg, ndcg_se = self._mean_se(self.ndcg, self.ndcg2, self.lists)
        tn, tn_se = self._mean_se(self.true_ndcg, self.true_ndcg2, self.served)
        items = self.bin_n.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            gap = np.abs(self.bin_p - self.bin_y)
        ece = float(gap.sum() / items) if items else None
        return {
            "lists": self.lists, "mrr": mrr, "mrr_se": mrr_se, "ndcg_at_10": ndcg,
            "ndcg_at_10_se": ndcg_se, "auc": self.concordant / self.pairs if self.pairs else None,
            "pairs": self.pairs, "log_loss": self.log_loss / self.lists if self.lists else None,
            "ece": ece,
            "ips_mrr": float(self.ips[1] / self.ips[0]) if self.ips[0] > 0 else None,
            "ips_ndcg_at_10": float(self.ips[3] / self.ips[2]) if self.ips[2] > 0 else None,
            "served": self.served, "true_ndcg_at_10": tn, "true_ndcg_at_10_se": tn_se,
            "calibration": [
                {"bin": [i / CALIBRATION_BINS, (i + 1) / CALIBRATION_BINS], "items": int(n),
                 "mean_p": float(p / n), "mean_y": float(y / n)}
                for i, (n, p, y) in enumerate(zip(self.bin_n, self.bin_p, self.bin_y)) if n],
        }


class PairedTotals:
    """Running sums of one model's per-list difference from a reference model on the same
    lists: the reference's reciprocal rank and NDCG@10 minus the model's. The standard
    error of a paired difference is much smaller than either model's own, because most
    of a list's difficulty is common to both.

    >>> t = PairedTotals()
    >>> a = list_metrics(np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    >>> b = list_metrics(np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([0.5, 0.5]))
    >>> t.add(a, b); t.add(a, a)
    >>> s = t.summary()
    >>> s["lists"], s["mrr_diff"], round(s["mrr_diff_se"], 3)
    (2, 0.25, 0.177)
    """

    def __init__(self) -> None:
        self.lists = 0
        self.rr = self.rr2 = 0.0
        self.ndcg = self.ndcg2 = 0.0

    def add(self, reference: ListMetrics, model: ListMetrics) -> None:
        """Count one labelled list scored by both."""
        d_rr = reference.reciprocal_rank - model.reciprocal_rank
        d_ndcg = reference.ndcg - model.ndcg
        self.lists += 1
        self.rr += d_rr
        self.rr2 += d_rr * d_rr
        self.ndcg += d_ndcg
        self.ndcg2 += d_ndcg * d_ndcg

    def summary(self) -> dict[str, Any]:
        """Mean differences and their standard errors (``None`` where undefined)."""
        mrr, mrr_se = MetricTotals._mean_se(self.rr, self.rr2, self.lists)
        ndcg, ndcg_se = MetricTotals._mean_se(self.ndcg, self.ndcg2, self.lists)
        return {"lists": self.lists, "mrr_diff": mrr, "mrr_diff_se": mrr_se,
                "ndcg_at_10_diff": ndcg, "ndcg_at_10_diff_se": ndcg_se}

