"""The model's scoring formula in numpy, shared by the scorer and the learner.

The relevance logit of candidate ``i`` for user ``u`` is the seed's match
``S(u, i) = sum_jk u_j p_k w_jk``, in two parts:

* sparse: the hashed crosses of user/session/query features with item features carry
  one FTRL-learned weight each, so their sum is a bilinear match over one-hot user and
  item features (``sparse_logits``);
* dense: a factorised match ``<u, v_i>`` of a user vector (the user's own embedding plus
  the mean embedding of their recent items) and an item vector (item, category and brand
  embeddings), learned with AdamW (``dense_logits``).

The ranking is ``softmax(S)`` over the candidates; since the softmax keeps the order, the
scorer sorts by ``S``.

Examples
--------
>>> import numpy as np
>>> from learner.features import DenseInputs
>>> tables = {name: np.ones((4, 2), dtype=np.float32) for name in DENSE_TABLES}
>>> d = DenseInputs(user=1, history=np.array([2], dtype=np.uint64),
...                 items=np.array([1, 2], dtype=np.uint64),
...                 categories=np.array([0, 3], dtype=np.uint64),
...                 brands=np.array([0, 0], dtype=np.uint64))
>>> dense_logits(tables, d).tolist()     # u = 1 + 1 per dim; v = 1 (+1 with a category)
[4.0, 8.0]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from learner.features import DenseInputs, FeatureBlock

__all__ = ["DENSE_TABLES", "dense_logits", "dense_slots", "sparse_logits"]

#: Embedding tables of the dense part, by role.
DENSE_TABLES = ("dense_user", "dense_item", "dense_category", "dense_brand")


def sparse_logits(w: npt.NDArray[np.floating], block: FeatureBlock) -> npt.NDArray[np.float64]:
    """``(n,)`` sparse part: one gather of the weights and one row sum."""
    return (w[block.index] * block.value).sum(axis=1, dtype=np.float64)


def dense_slots(h: npt.NDArray[np.uint64] | int, rows: int) -> npt.NDArray[np.int64]:
    """Row of each hash in a table of ``rows`` rows (a power of two)."""
    return (np.asarray(h, dtype=np.uint64) & np.uint64(rows - 1)).astype(np.int64)


def dense_logits(tables: Mapping[str, npt.NDArray[np.floating]],
                 dense: DenseInputs) -> npt.NDArray[np.float64]:
    """``(n,)`` dense part ``<u, v_i>``: the item's own embedding plus those of its
    category and brand where it has one (hash 0: none)."""
    users, items = tables["dense_user"], tables["dense_item"]
    u = users[dense.user & (users.shape[0] - 1)].astype(np.float64)
    if dense.history.size:
        u = u + _mean_rows(items.take(dense.history & np.uint64(items.shape[0] - 1), axis=0))
    # ndarray.take: a third of the time of fancy indexing (or np.take's wrapper)
    logits = items.take(dense.items & np.uint64(items.shape[0] - 1), axis=0) @ u
    for table, h in ((tables["dense_category"], dense.categories),
                     (tables["dense_brand"], dense.brands)):
        part = table.take(h & np.uint64(table.shape[0] - 1), axis=0) @ u
        logits += np.where(h != 0, part, 0.0)
    return logits


def _mean_rows(rows: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """``rows.mean(axis=0)`` by the very steps of numpy's ``mean`` (one sum, one division
    by the count in place), without its Python wrapper.

    >>> rows = np.array([[1.0, 2.0], [2.0, 4.0], [4.0, 4.5]], dtype=np.float32)
    >>> bool((_mean_rows(rows) == rows.mean(axis=0)).all()), _mean_rows(rows).dtype
    (True, dtype('float32'))
    """
    total = np.add.reduce(rows, axis=0)
    return np.true_divide(total, np.intp(rows.shape[0]), out=total, casting="unsafe")
