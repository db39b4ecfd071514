"""The features read from a user's (or a session's) state, over the candidates' columns.

:func:`learner.features.featurize` calls these for the user and for the session of a
request; :class:`Columns` holds the candidates' attributes they read (codes into each
attribute's distinct values, so a value read from the state is looked up once per
distinct brand, category or price level, not once per candidate):

* :func:`affinities`: the share of the state's engagement with each item's category and
  brand, closeness to its usual price, its favourite brand and category;
* :func:`seen`: whether each item was viewed, engaged with or bought;
* :func:`lifts`: clicks per examined showing of each item, brand, category and price
  level (the ``exposure`` counts of :mod:`learner.state`);
* :func:`taste_match`: how each item's vector matches the state's taste vector.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.items import ItemInfo
from learner.state import BRAND_KEY, CATEGORY_KEY, State

__all__ = ["LIFT_PRIOR_RATE", "LIFT_PRIOR_WEIGHT", "TASTE_PRIOR_WEIGHT", "Codes", "Columns",
           "affinities", "lifts", "seen", "taste_match"]


def _top_level_total(weights: Mapping[str, float]) -> float:
    return float(sum(v for k, v in weights.items() if "/" not in k))


def affinities(state: State | None, infos: Sequence[ItemInfo],
                cols: Columns | None = None
                ) -> tuple[npt.NDArray[np.float64], ...]:
    """Category share, brand share, price closeness, favourite brand, favourite category.

    ``cols`` are the candidates' attributes as :class:`Columns` (made here if not given);
    each value is computed once per distinct category, brand or price.
    """
    n = len(infos)
    if not state:
        zero = np.zeros(n)
        return zero, zero, zero, zero, zero
    c = cols if cols is not None else Columns.of(infos)
    cats: Mapping[str, float] = state.get("category", {})
    brands: Mapping[str, float] = state.get("brand", {})
    cat_total = _top_level_total(cats)
    brand_total = float(sum(brands.values()))
    zero = np.zeros(n)
    cat_share = c.leaf.map(lambda key: float(cats.get(key, 0.0)) / cat_total) \
        if cat_total > 0 else zero
    brand_share = c.brand.map(lambda key: float(brands.get(key, 0.0)) / brand_total) \
        if brand_total > 0 else zero
    w, s1, s2 = state.get("price", [0.0, 0.0, 0.0])
    if w > 0:
        mean = s1 / w
        sd = math.sqrt(max(s2 / w - mean * mean, 0.0) + 0.25 ** 2)  # floor: a 25% spread
        price_fit = np.where(c.has_price, np.exp(-0.5 * ((c.log_price - mean) / sd) ** 2), 0.0)
    else:
        price_fit = zero
    fav_brand = max(brands, key=brands.__getitem__) if brands else None
    top_cats = [k for k in cats if "/" not in k]
    fav_cat = max(top_cats, key=cats.__getitem__) if top_cats else None
    is_fav_c = np.array([t == fav_cat for t in c.tops], dtype=np.float64) \
        if fav_cat is not None else zero
    return cat_share, brand_share, price_fit, c.brand.equals(fav_brand), is_fav_c


class Codes:
    """One attribute of the candidates as codes into its distinct values.

    >>> c = Codes(["a", None, "b", "a"])
    >>> c.values, c.codes.tolist(), c.map(lambda v: len(v) + 1.0).tolist()
    (['a', None, 'b'], [0, 1, 2, 0], [2.0, 0.0, 2.0, 2.0])
    >>> c.equals("a").tolist()
    [1.0, 0.0, 0.0, 1.0]
    """

    __slots__ = ("codes", "values")

    def __init__(self, column: Sequence[Any]) -> None:
        self.values: list[Any] = list(dict.fromkeys(column))  # distinct, in first-seen order
        index = {v: i for i, v in enumerate(self.values)}
        self.codes = np.fromiter(map(index.__getitem__, column), dtype=np.intp, count=len(column))

    def map(self, value: Callable[[Any], float | None]) -> npt.NDArray[np.float64]:
        """``value(v)`` for each candidate's value ``v`` (0 for ``None`` or a ``None``
        result), computed once per distinct value."""
        out = [value(v) if v is not None else None for v in self.values]
        per_value = np.array([0.0 if x is None else x for x in out], dtype=np.float64)
        return per_value[self.codes]

    def equals(self, target: Any) -> npt.NDArray[np.float64]:
        """1 where the candidate's value is ``target`` (never for ``None``), else 0."""
        if target is None or target not in self.values:
            return np.zeros(len(self.codes))
        return (self.codes == self.values.index(target)).astype(np.float64)


@dataclass(frozen=True)
class Columns:
    """The candidates' attributes that the state features read, made once per request."""

    leaf: Codes
    brand: Codes
    price: Codes
    tops: list[str | None]
    item_lift_keys: list[str | None]
    log_price: npt.NDArray[np.float64]
    has_price: npt.NDArray[np.bool_]
    infos: Sequence[ItemInfo]

    @cached_property
    def vectors(self) -> npt.NDArray[np.float64] | None:
        """``(n, d)`` the candidates' item vectors (zeros where an item has none, or one
        of another length than the first); ``None`` when no candidate has one."""
        first = next((x.vector for x in self.infos if x.vector is not None), None)
        if first is None:
            return None
        zero = (0.0,) * len(first)
        return np.array([x.vector if x.vector is not None and len(x.vector) == len(first)
                         else zero for x in self.infos], dtype=np.float64)

    @classmethod
    def of(cls, infos: Sequence[ItemInfo]) -> Columns:
        lp = np.array([x.log_price if x.log_price is not None else np.nan for x in infos],
                      dtype=np.float64)
        has_price = ~np.isnan(lp)
        return cls(leaf=Codes([x.category_levels[-1] if x.category_levels else None
                                for x in infos]),
                   brand=Codes([x.brand for x in infos]),
                   price=Codes([x.lift_keys[3] for x in infos]),
                   tops=[x.category_levels[0] if x.category_levels else None for x in infos],
                   item_lift_keys=[x.lift_keys[0] for x in infos],
                   log_price=np.where(has_price, lp, 0.0), has_price=has_price, infos=infos)

    @property
    def lift(self) -> tuple[tuple[Codes, str], ...]:
        """The codes whose values make the brand, category and price-level exposure keys
        (:func:`learner.state.exposure_keys`), with the prefix that makes each key."""
        return (self.brand, BRAND_KEY), (self.leaf, CATEGORY_KEY), (self.price, "")


def seen(state: State | None, item_ids: Sequence[str]) -> tuple[list[float], list[float],
                                                                  list[float]]:
    """Whether each item was viewed, engaged with (click/cart/purchase), bought."""
    n = len(item_ids)
    if not state or not state.get("recent"):
        zero = [0.0] * n
        return zero, zero, zero
    viewed, engaged, bought = set(), set(), set()
    for kind, item, _ts in state["recent"]:
        if kind == "view":
            viewed.add(item)
        else:
            engaged.add(item)
            if kind == "purchase":
                bought.add(item)
    return ([1.0 if i in viewed else 0.0 for i in item_ids],
            [1.0 if i in engaged else 0.0 for i in item_ids],
            [1.0 if i in bought else 0.0 for i in item_ids])


#: Prior click rate per examination, and its weight in examinations, of the lifts.
LIFT_PRIOR_RATE = 0.25
LIFT_PRIOR_WEIGHT = 1.0


def lifts(state: State | None, item_ids: Sequence[str], infos: Sequence[ItemInfo],
           cols: Columns | None = None) -> npt.NDArray[np.float64]:
    """``(n, 7)`` the user's (or session's) log click-through lift on each item, its
    brand, its category and its price level: ``log(((C + k m) / (E + k)) / m)`` from the
    ``exposure`` counts (``E`` examinations, ``C`` clicks; see :mod:`learner.state`),
    shrunk to 0 by a prior of ``k`` examinations at rate ``m``; then the item's own ``C``
    and ``E``, whose weighted sum is the log-likelihood ratio of "a favourite" against
    "an ordinary item" under a click model with a rate per examination for each, and its
    add-to-carts and purchases (which follow a click, so say how relevant it was without
    any position bias). ``cols`` are the candidates' attributes as :class:`Columns` (made
    here if not given).

    >>> from learner.items import item_info
    >>> state = {"exposure": {"i:a": [1.0, 0.0], "i:b": [0.2, 1.0]}}
    >>> lifts(state, ["a", "b", "c"], [item_info(i, None) for i in "abc"]).round(2).tolist()
    [[-0.69, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.43, 0.0, 0.0, 0.0, 1.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    n = len(item_ids)
    out = np.zeros((n, 7), dtype=np.float64)
    exposure = (state or {}).get("exposure")
    if not exposure:
        return out
    c = cols if cols is not None else Columns.of(infos)
    get, log = exposure.get, math.log
    m, k = LIFT_PRIOR_RATE, LIFT_PRIOR_WEIGHT

    # brand, category and price level: few distinct keys per list, one lift per key
    for col, (codes, prefix) in zip((1, 2, 3), c.lift):
        def lift(value: str, prefix: str = prefix) -> float | None:
            e = get(prefix + value)
            return None if e is None else log((e[1] + k * m) / (e[0] + k) / m)
        out[:, col] = codes.map(lift)
    # the items themselves: most candidates have no entry
    for row, key in enumerate(c.item_lift_keys):
        e = get(key) if key is not None else None
        if e is not None:
            out[row, 0] = log((e[1] + k * m) / (e[0] + k) / m)
            out[row, 4] = e[1]
            out[row, 5] = e[0]
            out[row, 6] = e[2] if len(e) > 2 else 0.0
    return out


#: Weight (in clicks) of the prior at the origin that shrinks a short history's taste.
TASTE_PRIOR_WEIGHT = 1.0


def taste_match(state: State | None, cols: Columns) -> npt.NDArray[np.float64]:
    """``(n,)`` how well each candidate's item vector matches the state's taste: the dot
    product with the state's mean interacted vector, shrunk toward 0 by a prior of
    :data:`TASTE_PRIOR_WEIGHT` clicks (0 without a taste or item vectors).

    >>> from learner.items import item_info
    >>> infos = [item_info("a", {"embedding": [1.0, 0.0]}), item_info("b", {"embedding": [0.0, 1.0]}),
    ...          item_info("c", None)]
    >>> taste_match({"taste": [3.0, 3.0, 0.0]}, Columns.of(infos)).tolist()
    [0.75, 0.0, 0.0]
    """
    taste = (state or {}).get("taste")
    vectors = cols.vectors if taste else None
    if vectors is None or len(taste) != vectors.shape[1] + 1 or taste[0] <= 0:
        return np.zeros(len(cols.infos))
    return vectors @ (np.asarray(taste[1:], dtype=np.float64) / (taste[0] + TASTE_PRIOR_WEIGHT))
