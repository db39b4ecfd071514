"""Re-ranking as pure functions: the upstream order, the model's order, explanations.

Without a model the answer is the upstream order: by ``base_score`` descending where
given, items without one after those with one, ties and the rest as sent. With a model,
all candidates are scored in one vectorized pass (one gather, one row sum; see
:class:`~serving.model.ServingModel`) and sorted by logit, best first; each item's
``score`` is its share of the softmax over the candidates, ``R = softmax(S)``. The sort is a
stable sort *of the upstream-ordered list*, so ties keep the upstream order: a user the
model knows nothing about (every logit equal) gets exactly the upstream order back.

Examples
--------
>>> import numpy as np
>>> from learner.snapshot import Snapshot
>>> from serving.model import ServingModel
>>> from serving.schemas import RankItem
>>> items = [RankItem(item_id="a", base_score=1.0), RankItem(item_id="b"),
...          RankItem(item_id="c", base_score=3.0)]
>>> upstream_order(items).tolist()
[2, 0, 1]
>>> [(i, s) for i, s, _ in rank(None, RankContext("u-42"), items)]
[(2, 3.0), (0, 1.0), (1, None)]

A model that has learned nothing (all weights zero) keeps the upstream order:

>>> snap = Snapshot(version=1, created_ms=0, examples=0,
...                 arrays={"w": np.zeros(2**10, dtype=np.float32)}, meta={"hash_bits": 10})
>>> [(i, round(s, 3)) for i, s, _ in rank(ServingModel(snap), RankContext("u-42"), items)]
[(2, 0.333), (0, 0.333), (1, 0.333)]
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

from learner.catalog import ItemCache
from learner.features import RankContext
from learner.list_features import sent_best_first
from learner.state import State
from serving.model import ServingModel
from serving.schemas import RankItem

__all__ = ["EXPLAIN_TOP_K", "Explanation", "RankedRow", "rank", "sigmoid", "softmax",
           "upstream_order"]

#: How many features an explanation lists.
EXPLAIN_TOP_K = 3
_FEATURES = operator.attrgetter("features")
_BASE_SCORE = operator.attrgetter("base_score")
_ITEM_ID = operator.attrgetter("item_id")

#: ``[{"feature": name, "contribution": value}, ...]``, largest ``|contribution|`` first.
Explanation = list[dict[str, str | float]]
#: ``(index into the request's items, score, explanation)`` of one served candidate.
RankedRow = tuple[int, float | None, Explanation | None]


def sigmoid(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Logistic function, clipped so that no logit overflows ``exp``.

    >>> sigmoid(np.array([0.0, 1000.0])).round(3).tolist()
    [0.5, 1.0]
    """
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))


def upstream_order(items: Sequence[RankItem]) -> npt.NDArray[np.int64]:
    """Indices of ``items`` in the upstream engine's order.

    By ``base_score`` descending where given; items without a ``base_score`` come after
    all those with one; equal scores, and items without, keep the order as sent.

    >>> from serving.schemas import RankItem
    >>> upstream_order([RankItem(item_id="x"), RankItem(item_id="y")]).tolist()
    [0, 1]
    """
    return _upstream_order([it.base_score for it in items])


def _upstream_order(scores: Sequence[float | None]) -> npt.NDArray[np.int64]:
    """:func:`upstream_order` from the ``base_score`` of each item (``None`` for none)."""
    n = len(scores)
    if None not in scores:  # the common case: stable, by score descending
        return np.argsort(-np.array(scores, dtype=np.float64), kind="stable")
    base = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    missing = np.isnan(base)
    neg = np.where(missing, 0.0, -base)
    # lexsort: the last key is the primary one -> (has no score, -score, position sent)
    return np.lexsort((np.arange(n), neg, missing)).astype(np.int64)


def softmax(z: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Softmax over one list.

    >>> softmax(np.array([0.0, 0.0])).tolist()
    [0.5, 0.5]
    """
    # z.max() and e.sum() by their own ufunc reductions, without the methods' wrappers
    e = np.exp(z - np.maximum.reduce(z))
    e /= np.add.reduce(e)
    return e


def rank(model: ServingModel | None, ctx: RankContext, items: Sequence[RankItem],
         explain: bool = False, top_k: int = EXPLAIN_TOP_K, *, user: State | None = None,
         session: State | None = None, catalog: ItemCache | None = None) -> list[RankedRow]:
    """Order ``items`` for the request ``ctx``, best first.

    Parameters
    ----------
    model
        The served model, or ``None`` for the upstream order.
    ctx
        Who is asking, and for what.
    items
        The candidates, as sent.
    explain
        Add each item's ``top_k`` largest feature contributions (by absolute value).
    user, session
        The user's and the session's state (from Redis), if known.
    catalog
        The candidates' catalog entries, if known.

    Returns
    -------
    list of (index, score, explanation)
        ``index`` into ``items``; ``score`` the item's softmax share (the ``base_score``
        without a model); ``explanation`` ``None`` unless asked for and a model is there.
    """
    scores_sent = list(map(_BASE_SCORE, items))
    if model is None:
        return [(i, scores_sent[i], None) for i in _upstream_order(scores_sent).tolist()]
    if sent_best_first(scores_sent):  # as sent: no reordering
        up, ups, base_scores = None, items, scores_sent
    else:
        up = _upstream_order(scores_sent)
        up_list = up.tolist()
        ups = [items[i] for i in up_list]
        base_scores = [scores_sent[i] for i in up_list]
    block = model.features(
        ctx, list(map(_ITEM_ID, ups)), base_scores=base_scores,
        request_features=[it.features for it in ups] if any(map(_FEATURES, ups)) else None,
        user=user, session=session, items=catalog)
    contrib, names = model.contributions(block)  # (n, k), in upstream order
    logits = np.add.reduce(contrib, axis=1)  # contrib.sum(axis=1) without its wrapper
    order = (-logits).argsort(kind="stable")  # ties keep upstream order
    scores = softmax(logits[order]).tolist()
    served = (order if up is None else up[order]).tolist()
    if not explain:
        return list(zip(served, scores, repeat(None)))
    contrib = contrib[order]
    k = min(top_k, contrib.shape[1])
    top = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]  # (n, k) columns
    top_values = (np.take_along_axis(contrib, top, axis=1) + 0.0).tolist()  # no -0.0
    return [(i, s, [{"feature": names[c], "contribution": v} for c, v in zip(cols, vals)])
            for i, s, cols, vals in zip(served, scores, top.tolist(), top_values)]
