"""A per-shopper click model kept in the user state, updated as exposures and clicks arrive.

For one user, the clicks ``C_i`` on item ``i`` out of its ``E_i`` (position-discounted)
examinations, the ``exposure`` counts of :mod:`learner.state`, are taken as Poisson with

.. math::

    E_i \\exp(\\mu + b_{brand(i)} + c_{leaf(i)} + w \\cdot v_i + a x_i + q x_i^2 + d_i)

(a brand effect, a leaf-category effect, a taste weight vector over the item vector, a
quadratic in the item's log price relative to its category, ``x_i``, and an item
effect), with independent Gaussian priors centred at 0 (:data:`PRIOR_SD`). The
item attributes are fixed, so the per-item counts are sufficient statistics: the
posterior mode given the state's counts is the fit over the whole history the state
keeps. The worker does not solve for it per request: after each change of the counts (a
list shown, a click) :func:`update_click_model` moves the stored estimate by one Newton
step on the shared effects (``mu``, brands, categories, ``w``) and one on each item
effect, warm-started from the stored estimate, so it tracks the mode as the counts grow.
The estimate is stored JSON-ready under :data:`CLICK_MODEL_KEY`::

    {"mu": -1.4, "brand": {"acme": 0.61}, "category": {"shoes/running": 0.1},
     "taste": [w_1, ..., w_d], "price": [a, q], "price_center": {"shoes/running": 4.1},
     "item": {"sku-1": 0.93}, "n": 17.2}

(``price_center``: the mean log price of the category's items in the counts, where ``x``
is measured from; ``n``: the examinations it was fitted on); :func:`learner.state_features.click_features`
reads it at ranking time with a lookup per distinct brand and category, one dot product
with the candidates' vectors and a lookup per candidate.

Examples
--------
>>> from learner.catalog import ItemCache
>>> from learner.state import record_exposure, update_state
>>> cache = ItemCache()
>>> for i, brand in [("a", "acme"), ("b", "acme"), ("c", "zeta"), ("d", "zeta")]:
...     _ = cache.put(i, {"brand": brand, "category": "shoes"})
>>> s = None
>>> for t in range(6):
...     s = record_exposure(s, [("a", {"brand": "acme"}, 1), ("c", {"brand": "zeta"}, 2),
...                             ("b", {"brand": "acme"}, 3), ("d", {"brand": "zeta"}, 4)],
...                         ts=t, half_life_ms=0)
...     s = update_click_model(s, cache)
...     s = update_state(s, "click", "b", {"brand": "acme"}, ts=t, half_life_ms=0)
...     s = update_click_model(s, cache)
>>> m = s[CLICK_MODEL_KEY]
>>> m["brand"]["acme"] > 0 > m["brand"]["zeta"], m["item"]["b"] > 0 > m["item"]["a"]
(True, True)
"""

from __future__ import annotations

import math
from itertools import repeat
from typing import Any

import numpy as np

from learner.candidates import BRAND, LEAF
from learner.catalog import ItemCache
from learner.state import CLICK_MODEL_KEY, ITEM_KEY, State

__all__ = ["CLICK_MODEL_KEY", "PRIOR_MU", "PRIOR_SD", "fit_click_model",
           "update_click_model"]

#: Prior standard deviation of each kind of effect (``mu`` is centred at :data:`PRIOR_MU`).
PRIOR_SD: dict[str, float] = {"mu": 3.0, "brand": 0.8, "category": 0.8, "taste": 0.7,
                              "price": 1.5, "price2": 2.0, "item": 1.0}
#: Prior mean of ``mu``: a click per four examinations.
PRIOR_MU = math.log(0.25)
#: Largest change of any effect in one step (a step far from the mode can overshoot).
MAX_STEP = 1.5
# digits kept in the state
_DIGITS = 4


def _rows(exposure: dict[str, list[float]]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The items of ``exposure`` with their examinations and clicks."""
    entries = [(key, entry) for key, entry in exposure.items() if key[:2] == ITEM_KEY]
    n = len(entries)
    examined = np.fromiter((entry[0] for _, entry in entries), dtype=np.float64, count=n)
    clicked = np.fromiter((entry[1] for _, entry in entries), dtype=np.float64, count=n)
    return [key[2:] for key, _ in entries], examined, clicked


def _local_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct non-zero codes in ascending order, and each row's index among them
    (-1 for code 0, no value): ``np.unique`` by a presence table, which is cheaper for
    the catalog's small dense codes."""
    present = np.zeros(int(codes.max()) + 1 if codes.size else 1, dtype=bool)
    present[codes] = True
    present[0] = False
    distinct = np.flatnonzero(present)
    position = np.cumsum(present) - 1
    return distinct, np.where(codes != 0, position[codes], -1)


def fit_click_model(exposure: dict[str, list[float]], items: ItemCache,
                    previous: dict[str, Any] | None = None, steps: int = 1
                    ) -> dict[str, Any] | None:
    """The click model after ``steps`` Newton steps from ``previous`` (from the prior
    when ``None``) on the item counts in ``exposure``; ``None`` without any item.

    >>> cache = ItemCache()
    >>> _ = cache.put("a", {"brand": "acme", "embedding": [1.0, 0.0]})
    >>> _ = cache.put("b", {"brand": "zeta", "embedding": [0.0, 1.0]})
    >>> m = fit_click_model({"i:a": [3.0, 2.0], "i:b": [3.0, 0.0]}, cache, steps=5)
    >>> sorted(m), m["brand"]["acme"] > 0 > m["brand"]["zeta"], len(m["taste"])
    (['brand', 'category', 'item', 'mu', 'n', 'price', 'price_center', 'taste'], True, 2)
    >>> fit_click_model({"b:acme": [1.0, 0.0]}, cache) is None
    True
    """
    ids, examined, clicked = _rows(exposure)
    if not ids:
        return None
    prev = previous or {}
    cands = items.gather(ids)
    vocabularies = items.vocabularies
    blocks: list[tuple[str, list[str], np.ndarray]] = []  # kind, names, (n,) local code
    for kind, column in (("brand", BRAND), ("category", LEAF)):
        distinct, local = _local_codes(cands.codes[:, column])
        values = vocabularies[column].values
        blocks.append((kind, [values[c] for c in distinct.tolist()], local))
    vectors = cands.vectors
    taste_prev = prev.get("taste")
    n, dim = len(ids), (0 if vectors is None else vectors.shape[1])
    # log price relative to the mean of its leaf category's items here
    leaf_names, leaf = blocks[1][1], blocks[1][2]
    priced = cands.has_price & (leaf >= 0)
    slot = np.where(priced, leaf, len(leaf_names))
    total = np.bincount(slot, weights=cands.log_price, minlength=len(leaf_names) + 1)
    count = np.bincount(slot, minlength=len(leaf_names) + 1)
    center = total / np.maximum(count, 1)  # the last slot: items without either
    rel = np.where(priced, cands.log_price - center[slot], 0.0)
    p = 1 + sum(len(b[1]) for b in blocks) + dim + 2
    x = np.zeros((n, p))
    x[:, 0] = 1.0
    beta = np.zeros(p)
    mean = np.zeros(p)
    sd = np.empty(p)
    beta[0] = mean[0] = PRIOR_MU
    if "mu" in prev:
        beta[0] = prev["mu"]
    sd[0] = PRIOR_SD["mu"]
    start = 1
    for kind, names, local in blocks:
        have = local >= 0
        x[np.flatnonzero(have), start + local[have]] = 1.0
        stored = prev.get(kind) or {}
        beta[start:start + len(names)] = [stored.get(name, 0.0) for name in names]
        sd[start:start + len(names)] = PRIOR_SD[kind]
        start += len(names)
    if dim:
        assert vectors is not None
        x[:, start:start + dim] = vectors
        if taste_prev is not None and len(taste_prev) == dim:
            beta[start:start + dim] = taste_prev
        sd[start:start + dim] = PRIOR_SD["taste"]
    x[:, -2], x[:, -1] = rel, rel * rel
    beta[-2:] = prev.get("price") or (0.0, 0.0)
    sd[-2:] = PRIOR_SD["price"], PRIOR_SD["price2"]
    precision = 1.0 / sd ** 2
    stored_items = prev.get("item") or {}
    d = np.fromiter(map(stored_items.get, ids, repeat(0.0)), dtype=np.float64, count=n)
    d_precision = 1.0 / PRIOR_SD["item"] ** 2
    for _ in range(steps):
        # the shared effects given the item effects: one Newton step
        rate = examined * np.exp(np.minimum(x @ beta + d, 20.0))
        grad = x.T @ (clicked - rate) - precision * (beta - mean)
        hess = (x * rate[:, None]).T @ x
        hess[np.diag_indices(p)] += precision
        beta += np.clip(np.linalg.solve(hess, grad), -MAX_STEP, MAX_STEP)
        # each item effect given the shared ones: one Newton step each
        rate = examined * np.exp(np.minimum(x @ beta + d, 20.0))
        d += np.clip((clicked - rate - d_precision * d) / (rate + d_precision),
                     -MAX_STEP, MAX_STEP)
    out: dict[str, Any] = {"mu": round(float(beta[0]), _DIGITS)}
    start = 1
    for kind, names, _local in blocks:
        out[kind] = {name: round(v, _DIGITS)
                     for name, v in zip(names, beta[start:start + len(names)].tolist())}
        start += len(names)
    out["taste"] = [round(v, _DIGITS) for v in beta[start:start + dim].tolist()]
    out["price"] = [round(v, _DIGITS) for v in beta[-2:].tolist()]
    out["price_center"] = {name: round(c, _DIGITS) for name, c, k
                           in zip(leaf_names, center.tolist(), count[:-1].tolist()) if k}
    out["item"] = dict(zip(ids, np.round(d, _DIGITS).tolist()))
    out["n"] = round(float(examined.sum()), 3)
    return out


def update_click_model(state: State | None, items: ItemCache, steps: int = 1
                       ) -> State | None:
    """``state`` with its click model moved by ``steps`` Newton steps toward the mode of
    its current ``exposure`` counts (see the module's docstring); the worker calls it
    after :func:`~learner.state.record_exposure` and after a click's
    :func:`~learner.state.update_state`. The state is updated in place and returned.

    >>> update_click_model(None, ItemCache()) is None
    True
    """
    if not state:
        return state
    model = fit_click_model(state.get("exposure") or {}, items,
                            state.get(CLICK_MODEL_KEY), steps)
    if model is None:
        state.pop(CLICK_MODEL_KEY, None)
    else:
        state[CLICK_MODEL_KEY] = model
    return state
