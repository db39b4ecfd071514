"""Features of the list as it was sent: its upstream order and base scores, and each
candidate's price relative to the list's.

They depend on the other candidates, not on the user: ``base_score_z`` and
``upstream_rank`` (:func:`upstream_features`), a request feature's rank within the list
(:func:`rank_score`) and ``relative_price`` (:func:`relative_price`).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from learner.candidates import Candidates

__all__ = ["rank_curve", "rank_score", "relative_price", "sent_best_first",
           "upstream_features", "zscore"]


def zscore(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``x`` less its mean, over its standard deviation (zeros when it is constant).

    >>> zscore(np.array([1.0, 3.0])).tolist(), zscore(np.array([2.0, 2.0])).tolist()
    ([-1.0, 1.0], [0.0, 0.0])
    """
    d = x - np.add.reduce(x) / len(x)  # x.sum() without its Python wrapper
    sd = math.sqrt(float(np.dot(d, d)) / len(x))
    return d / sd if sd > 1e-9 else np.zeros_like(x)


def rank_score(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1 for the largest value of the list, falling as 1 / log2(rank + 1); ties in the
    order given.

    >>> rank_score(np.array([1.0, 3.0, 2.0])).round(3).tolist()
    [0.5, 1.0, 0.631]
    """
    out = np.empty(len(x))
    out[(-x).argsort(kind="stable")] = rank_curve(len(x))
    return out


@lru_cache(maxsize=64)
def rank_curve(n: int) -> npt.NDArray[np.float64]:
    """``1 / log2(rank + 1)`` for ranks 1 to ``n`` (read-only: cached)."""
    curve = 1.0 / np.log2(np.arange(1, n + 1, dtype=np.float64) + 1.0)
    curve.setflags(write=False)
    return curve


def upstream_features(base_scores: Sequence[float | None] | None, n: int
                       ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``base_score_z`` and ``upstream_rank``: the scores z-scored within the list (the
    missing ones filled with the lowest) and their rank score (:func:`rank_score`);
    without scores, zeros and the order as sent.

    >>> [x.round(3).tolist() for x in upstream_features([3.0, None, 1.0], 3)]
    [[1.414, -0.707, -0.707], [1.0, 0.631, 0.5]]
    """
    missing = n if base_scores is None else base_scores.count(None)
    if base_scores is None or missing == n:
        return np.zeros(n), rank_curve(n)  # the order as sent is the upstream order
    if missing:
        bs = np.array([b if b is not None else np.nan for b in base_scores], dtype=np.float64)
    else:
        bs = np.array(base_scores, dtype=np.float64)
    if np.isnan(bs).any():
        bs = np.where(np.isnan(bs), np.nanmin(bs), bs)
        return zscore(bs), rank_score(bs)
    # sent best first (no NaN): the rank score needs no sort. Checked on the float64
    # scores, in numpy: when they do not increase, rank_score(bs) is rank_curve(n) too (a
    # stable sort leaves them in place), so either check gives the same values
    best_first = np.greater_equal(bs[:-1], bs[1:]).all()
    return zscore(bs), rank_curve(n) if best_first else rank_score(bs)


def sent_best_first(scores: Sequence[float | None]) -> bool:
    """Whether the items came in the upstream order already (every ``base_score`` given,
    none below the next): what a search engine sends, whose order then needs no sort.

    >>> sent_best_first([3.0, 2.0, 2.0]), sent_best_first([1.0, 2.0]), sent_best_first([1.0, None])
    (True, False, False)
    """
    return None not in scores and all(map(operator.ge, scores, scores[1:]))  # type: ignore[arg-type]


def relative_price(cands: Candidates) -> npt.NDArray[np.float64]:
    """``(n,)`` each log price less the mean of the list's known ones (0 where unknown)."""
    known, log_price = cands.has_price, cands.log_price
    if known.all():
        # np.mean's own steps (one pairwise sum, one division), without its wrapper
        return log_price - np.add.reduce(log_price) / len(log_price)
    if known.any():
        return np.where(known, log_price - log_price[known].mean(), 0.0)
    return np.zeros(len(log_price))
