"""A user's (or a session's) state, kept fresh by the stream and read at ranking time.

A state is a small JSON-ready dict, so it lives in a Faust table, in Redis for the scorer,
and in an offline replay alike::

    {"ts": 1764489605000,                      # event time of the last update (ms)
     "recent": [["click", "sku-1", 1764489605000], ...],   # newest last, bounded
     "category": {"shoes": 1.7, "shoes/running": 1.7},    # decayed engagement weight
     "brand": {"acme": 1.7},
     "price": [w, w * log price, w * log price ** 2],      # decayed moments
     "exposure": {"i:sku-1": [0.83, 1.0, 1.0], "b:acme": [1.5, 1.0], ...},
     # [examined, clicked] and, for an item, its add-to-carts and purchases after those
     "taste": [w, w * v_1, ..., w * v_d]}    # decayed sum of interacted item vectors

``taste`` sums the unit vectors (``learner.items.item_vector``) of the items interacted
with, each weighted by its interaction's strength; divided by its weight it is where in
the catalog's embedding space the user's (or the session's) interest lies.

Every weight decays with a half-life of event time, so old tastes fade; each
interaction adds its type's weight (a view counts less than a purchase).

``exposure`` counts, per item, brand, category and price level, how often the user
probably *looked* at such an item in a served list (each shown item adds the prior
examination probability of its position, ``1 / position``) and how often they clicked
one. Clicks divided by examinations is the user's own click-through rate on that item or
brand, free of position bias to first order: an item skipped at the top of three lists
is disliked, one skipped at position 19 says little. :func:`record_exposure` adds a
served list, :func:`update_state` the clicks.

Examples
--------
>>> s = update_state(None, "click", "sku-1", {"category": "shoes/running", "brand": "acme",
...                  "price": 60.0}, ts=0, half_life_ms=1000)
>>> s["category"], s["brand"]
({'shoes': 1.0, 'shoes/running': 1.0}, {'acme': 1.0})
>>> s = update_state(s, "view", "sku-2", {"category": "bags", "brand": "zed"}, ts=1000,
...                  half_life_ms=1000)
>>> round(s["category"]["shoes"], 3), s["category"]["bags"], [r[1] for r in s["recent"]]
(0.5, 0.3, ['sku-1', 'sku-2'])
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "CLICK_MODEL_KEY",
    "INTERACTION_STRENGTH",
    "State",
    "category_levels",
    "exposure_keys",
    "record_exposure",
    "record_exposure_keys",
    "update_state",
]

State = dict[str, Any]

#: How much one interaction of each type adds to an affinity.
INTERACTION_STRENGTH: dict[str, float] = {"view": 0.3, "click": 1.0, "add_to_cart": 2.0,
                                          "purchase": 3.0}
#: Entries kept per affinity map (the strongest survive).
MAX_AFFINITIES = 32
#: Interactions kept in ``recent``.
MAX_RECENT = 50
#: Entries kept in ``exposure`` (the most examined survive).
MAX_EXPOSURE = 256


def category_levels(category: str | None) -> list[str]:
    """Every level of a category path: ``"a/b/c"`` -> ``["a", "a/b", "a/b/c"]``.

    >>> category_levels("shoes/running")
    ['shoes', 'shoes/running']
    """
    if not category:
        return []
    parts = [p for p in category.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


#: The prefix of each kind of ``exposure`` key: an item, a brand, a (leaf) category, a
#: price level.
ITEM_KEY, BRAND_KEY, CATEGORY_KEY, PRICE_KEY = "i:", "b:", "c:", "p:"
#: Where a user's click model (:mod:`learner.click_model`) lives in the state.
CLICK_MODEL_KEY = "click_model"


def exposure_keys(item_id: str, item: Mapping[str, Any] | None) -> list[str]:
    """The ``exposure`` entries one item counts toward: itself, its brand, its (leaf)
    category and its price level (half a natural-log unit wide, about x1.65 in price).

    >>> exposure_keys("sku-1", {"category": "shoes/running", "brand": "acme", "price": 60.0})
    ['i:sku-1', 'b:acme', 'c:shoes/running', 'p:8']
    """
    keys = [ITEM_KEY + item_id]
    if item is None:
        return keys
    if item.get("brand"):
        keys.append(BRAND_KEY + item["brand"])
    levels = category_levels(item.get("category"))
    if levels:
        keys.append(CATEGORY_KEY + levels[-1])
    p = item.get("price")
    if p is not None and p > 0:
        keys.append(f"{PRICE_KEY}{round(math.log(p) * 2)}")
    return keys


def _decayed_exposure(exposure: Mapping[str, list[float]], factor: float
                      ) -> dict[str, list[float]]:
    if factor == 1.0:
        return {k: list(v) for k, v in exposure.items()}
    # the same as one comprehension over every entry, unrolled for the common two-count
    # entry: the worker runs this for every event, over up to MAX_EXPOSURE entries
    out: dict[str, list[float]] = {}
    for k, v in exposure.items():
        if len(v) == 2:
            e, c = v
            if e * factor > 1e-3 or c * factor > 1e-3:
                out[k] = [e * factor, c * factor]
        elif max(v) * factor > 1e-3:
            out[k] = [x * factor for x in v]
    return out


def _decayed(state: State | None, ts: int, half_life_ms: float) -> State:
    """A copy of ``state`` (a fresh one for ``None``) with every weight decayed to ``ts``."""
    s: State = dict(state) if state else {"ts": ts, "recent": [], "category": {}, "brand": {},
                                          "price": [0.0, 0.0, 0.0]}
    dt = max(0, ts - int(s.get("ts", ts)))
    factor = 0.5 ** (dt / half_life_ms) if half_life_ms > 0 else 1.0
    s["category"] = _decay(s.get("category", {}), factor)
    s["brand"] = _decay(s.get("brand", {}), factor)
    s["price"] = [v * factor for v in s.get("price", [0.0, 0.0, 0.0])]
    s["exposure"] = _decayed_exposure(s.get("exposure", {}), factor)
    if "taste" in s:
        s["taste"] = [v * factor for v in s["taste"]]
    s["ts"] = max(ts, int(s.get("ts", ts)))
    return s


def record_exposure(state: State | None, shown: Sequence[tuple[str, Mapping[str, Any] | None,
                                                                int]],
                    ts: int, half_life_ms: float) -> State:
    """The state after the user was shown a list: ``(item_id, catalog entry or None,
    1-based position)`` per item; each adds ``1 / position`` examinations to its keys.

    >>> s = record_exposure(None, [("a", {"brand": "acme"}, 1), ("b", {"brand": "acme"}, 2)],
    ...                     ts=0, half_life_ms=1000)
    >>> s["exposure"]
    {'i:a': [1.0, 0.0], 'b:acme': [1.5, 0.0], 'i:b': [0.5, 0.0]}
    >>> s = update_state(s, "click", "b", {"brand": "acme"}, ts=1000, half_life_ms=1000)
    >>> s["exposure"]["i:b"], s["exposure"]["b:acme"]
    ([0.25, 1.0], [0.75, 1.0])
    """
    return record_exposure_keys(
        state, [(exposure_keys(item_id, item), position) for item_id, item, position in shown],
        ts, half_life_ms)


def record_exposure_keys(state: State | None, shown: Sequence[tuple[Sequence[str], int]],
                         ts: int, half_life_ms: float) -> State:
    """:func:`record_exposure` with each shown item's :func:`exposure_keys` already made
    (the catalog keeps them: ``ItemInfo.lift_keys``): ``(keys, 1-based position)``.

    >>> record_exposure_keys(None, [(["i:a", "b:acme"], 1), (["i:b", "b:acme"], 2)],
    ...                      ts=0, half_life_ms=1000)["exposure"]
    {'i:a': [1.0, 0.0], 'b:acme': [1.5, 0.0], 'i:b': [0.5, 0.0]}
    """
    s = _decayed(state, ts, half_life_ms)
    exposure = s["exposure"]
    for keys, position in shown:
        weight = 1.0 / max(position, 1)
        for key in keys:
            entry = exposure.get(key)
            if entry is None:
                exposure[key] = [weight, 0.0]
            else:
                entry[0] += weight
    s["exposure"] = _bounded_exposure(exposure)
    return s


def _bounded_exposure(exposure: dict[str, list[float]]) -> dict[str, list[float]]:
    if len(exposure) <= MAX_EXPOSURE:
        return exposure
    top = sorted(exposure.items(), key=lambda kv: sum(kv[1]), reverse=True)
    return dict(top[:MAX_EXPOSURE])


def _decay(weights: Mapping[str, float], factor: float) -> dict[str, float]:
    return {k: v * factor for k, v in weights.items() if v * factor > 1e-4}


def _bounded(weights: dict[str, float]) -> dict[str, float]:
    if len(weights) <= MAX_AFFINITIES:
        return weights
    top = sorted(weights.items(), key=lambda kv: kv[1], reverse=True)[:MAX_AFFINITIES]
    return dict(top)


def update_state(state: State | None, kind: str, item_id: str, item: Mapping[str, Any] | None,
                 ts: int, half_life_ms: float, max_recent: int = MAX_RECENT) -> State:
    """The state after one interaction with ``item`` (its catalog entry, or ``None``)."""
    s = _decayed(state, ts, half_life_ms)
    strength = INTERACTION_STRENGTH.get(kind, 1.0)
    category, brand, price, exposure = s["category"], s["brand"], s["price"], s["exposure"]
    if item is not None:
        for level in category_levels(item.get("category")):
            category[level] = category.get(level, 0.0) + strength
        if item.get("brand"):
            brand[item["brand"]] = brand.get(item["brand"], 0.0) + strength
        p = item.get("price")
        if p is not None and p > 0:
            lp = math.log(p)
            price = [price[0] + strength, price[1] + strength * lp, price[2] + strength * lp * lp]
        vector = item.get("vector")
        if vector:
            taste = s.get("taste")
            if not taste or len(taste) != len(vector) + 1:  # none yet, or a new dimension
                taste = [0.0] * (len(vector) + 1)
            s["taste"] = [taste[0] + strength,
                          *(t + strength * v for t, v in zip(taste[1:], vector))]
    if kind == "click":
        for key in exposure_keys(item_id, item):
            entry = exposure.setdefault(key, [0.0, 0.0])
            entry[1] += 1.0
    elif kind in ("add_to_cart", "purchase"):
        entry = exposure.setdefault(ITEM_KEY + item_id, [0.0, 0.0])
        if len(entry) < 3:
            entry.append(0.0)
        entry[2] += 1.0
    s["category"] = _bounded(category)
    s["brand"] = _bounded(brand)
    s["price"] = price
    s["exposure"] = _bounded_exposure(exposure)
    s["recent"] = (list(s.get("recent", [])) + [[kind, item_id, ts]])[-max_recent:]
    return s
