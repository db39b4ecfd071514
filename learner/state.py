"""A user's (or a session's) state, kept fresh by the stream and read at ranking time.

A state is a small JSON-ready dict, so it lives in a Faust table, in Redis for the scorer,
and in an offline replay alike::

    {"ts": 1764489605000,                      # event time of the last update (ms)
     "recent": [["click", "sku-1", 1764489605000], ...],   # newest last, bounded
     "category": {"shoes": 1.7, "shoes/running": 1.7},    # decayed engagement weight
     "brand": {"acme": 1.7},
     "price": [w, w * log price, w * log price ** 2]}      # decayed moments

Every weight decays with a half-life of event time, so old tastes fade; each
interaction adds its type's weight (a view counts less than a purchase).

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
from collections.abc import Mapping
from typing import Any

__all__ = [
    "INTERACTION_STRENGTH",
    "State",
    "category_levels",
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


def category_levels(category: str | None) -> list[str]:
    """Every level of a category path: ``"a/b/c"`` -> ``["a", "a/b", "a/b/c"]``.

    >>> category_levels("shoes/running")
    ['shoes', 'shoes/running']
    """
    if not category:
        return []
    parts = [p for p in category.split("/") if p]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


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
    s: State = dict(state) if state else {"ts": ts, "recent": [], "category": {}, "brand": {},
                                          "price": [0.0, 0.0, 0.0]}
    dt = max(0, ts - int(s.get("ts", ts)))
    factor = 0.5 ** (dt / half_life_ms) if half_life_ms > 0 else 1.0
    strength = INTERACTION_STRENGTH.get(kind, 1.0)
    category = _decay(s.get("category", {}), factor)
    brand = _decay(s.get("brand", {}), factor)
    price = [v * factor for v in s.get("price", [0.0, 0.0, 0.0])]
    if item is not None:
        for level in category_levels(item.get("category")):
            category[level] = category.get(level, 0.0) + strength
        if item.get("brand"):
            brand[item["brand"]] = brand.get(item["brand"], 0.0) + strength
        p = item.get("price")
        if p is not None and p > 0:
            lp = math.log(p)
            price = [price[0] + strength, price[1] + strength * lp, price[2] + strength * lp * lp]
    s["category"] = _bounded(category)
    s["brand"] = _bounded(brand)
    s["price"] = price
    s["recent"] = (list(s.get("recent", [])) + [[kind, item_id, ts]])[-max_recent:]
    s["ts"] = max(ts, int(s.get("ts", ts)))
    return s
