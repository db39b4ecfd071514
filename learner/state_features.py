"""The features read from the user's and the session's state, over the candidates' columns.

:func:`learner.features.featurize` calls these with the request's user and session state
and its candidates as :class:`~learner.catalog.Candidates` (columns with codes into each
attribute's values). A state holds few entries next to a list's candidates, so the values
are computed in plain Python, once per distinct brand, category or price level (or per
candidate the state has an entry for), and placed into the ``(n, k)`` block by one table
gather or one scatter; a numpy call per feature would cost more than the feature.

* :func:`code_features` (:data:`CODE_FEATURES`): the state's share of engagement with each
  item's category and brand, its favourite brand and category, and its click-through
  lift on the item's brand, category and price level (the ``exposure`` counts of
  :mod:`learner.state`);
* :func:`item_features` (:data:`ITEM_FEATURES`): whether each item was viewed, engaged
  with or bought, and the lift, clicks, examinations and add-to-carts of the item itself;
* :func:`click_features` (:data:`CLICK_FEATURES`): the user's own click model
  (:mod:`learner.click_model`): its brand, category, taste and item effects;
* :func:`price_fit`: closeness to the user's usual price;
* :func:`taste_match`: how each item's vector matches the state's taste vector.

Examples
--------
>>> from learner.catalog import ItemCache
>>> cache = ItemCache()
>>> _ = cache.put("a", {"brand": "Acme", "category": "shoes/trail", "price": 50.0})
>>> user = {"brand": {"acme": 3.0, "zeta": 1.0}, "category": {"shoes": 1.0},
...         "price": [1.0, 3.9, 15.2], "recent": [["click", "a", 1]],
...         "exposure": {"i:a": [1.0, 1.0], "b:acme": [4.0, 1.0]}}
>>> block = code_features(user, None, cache.gather(["a", "b"]))
>>> dict(zip(CODE_FEATURES, block[0].round(2).tolist()))["user_brand_affinity"]
0.75
>>> items = item_features(user, None, cache.gather(["a", "b"]))
>>> items[:, ITEM_FEATURES.index("engaged_by_user")].tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from learner.candidates import BRAND, LEAF, PRICE, TOP, Candidates
from learner.state import BRAND_KEY, CATEGORY_KEY, CLICK_MODEL_KEY, ITEM_KEY, State

__all__ = ["CLICK_FEATURES", "CODE_FEATURES", "ITEM_FEATURES", "LIFT_PRIOR_RATE", "LIFT_PRIOR_WEIGHT",
           "TASTE_PRIOR_WEIGHT", "click_features", "code_features", "item_features", "lift", "price_fit",
           "taste_match"]

#: Prior click rate per examination, and its weight in examinations, of the lifts.
LIFT_PRIOR_RATE = 0.25
LIFT_PRIOR_WEIGHT = 1.0
#: Weight (in clicks) of the prior at the origin that shrinks a short history's taste.
TASTE_PRIOR_WEIGHT = 1.0

#: Columns of :func:`code_features`, each read through one code column of the candidates.
CODE_FEATURES: tuple[str, ...] = (
    "user_category_affinity", "user_brand_affinity", "favourite_brand", "favourite_category",
    "session_category_affinity", "session_brand_affinity",
    "user_brand_lift", "user_category_lift", "user_price_lift",
    "session_brand_lift", "session_category_lift",
)
# the code column each of them reads
_CODE_COLUMNS: tuple[int, ...] = (LEAF, BRAND, BRAND, TOP, LEAF, BRAND, BRAND, LEAF, PRICE, BRAND, LEAF)
_CODE_COLUMN_INDEX = np.array(_CODE_COLUMNS, dtype=np.intp)
#: Columns of :func:`item_features`, one value per candidate the state has an entry for.
ITEM_FEATURES: tuple[str, ...] = (
    "viewed_by_user", "engaged_by_user", "bought_by_user", "viewed_in_session",
    "engaged_in_session", "user_item_lift", "user_item_clicks", "user_item_examined",
    "user_item_carts", "session_item_lift",
)
#: Columns of :func:`click_features`: the effects of the user's click model.
CLICK_FEATURES: tuple[str, ...] = (
    "user_click_brand", "user_click_category", "user_click_taste", "user_click_price",
    "user_click_item",
)
# the prefix that makes an exposure key from the value in the code column of the user's
# brand, category and price lifts (_CODE_COLUMNS[6:9]); the price column's values are
# whole keys already (learner.state.exposure_keys)
_LIFT_PREFIXES = (BRAND_KEY, CATEGORY_KEY, "")
# up to this many of a state's exposure entries of one kind get their lift whether or not a
# candidate has that value (a log each, cheaper than finding out); beyond, only those that do
_LIFTS_UNFILTERED = 16


def lift(entry: list[float]) -> float:
    """The log click-through lift ``log(((C + k m) / (E + k)) / m)`` of an ``exposure``
    entry ``[E, C, ...]`` (``E`` examinations, ``C`` clicks), shrunk to 0 by a prior of
    ``k`` examinations at rate ``m``.

    >>> round(lift([1.0, 0.0]), 2), round(lift([0.2, 1.0]), 2), lift([0.0, 0.0])
    (-0.69, 1.43, 0.0)
    """
    m, k = LIFT_PRIOR_RATE, LIFT_PRIOR_WEIGHT
    return math.log((entry[1] + k * m) / (entry[0] + k) / m)


def _lifts(exposure: Mapping[str, list[float]], keys: Iterable[str]) -> list[float]:
    """:func:`lift` of the ``exposure`` entry of each of ``keys`` (the same arithmetic,
    without a call per entry).

    >>> _lifts({"a": [1.0, 0.0], "b": [0.2, 1.0]}, ["b", "a"]) == [lift([0.2, 1.0]), lift([1.0, 0.0])]
    True
    """
    m, k, km, log = LIFT_PRIOR_RATE, LIFT_PRIOR_WEIGHT, LIFT_PRIOR_WEIGHT * LIFT_PRIOR_RATE, math.log
    return [log((e[1] + km) / (e[0] + k) / m) for e in map(exposure.__getitem__, keys)]


def _top_level_total(weights: Mapping[str, float]) -> float:
    return float(sum(v for k, v in weights.items() if "/" not in k))


def code_features(user: State | None, session: State | None, cands: Candidates
                  ) -> npt.NDArray[np.float64]:
    """``(n, len(CODE_FEATURES))``: the user's and the session's share of engagement with
    each item's category and brand, the user's favourite brand and top category, and the
    lifts (:func:`lift`) of the item's brand, category and price level.

    The state's keys find their codes in the catalog's vocabularies (one set intersection
    per feature, over the state's entries; the lifts, beyond a few, only for values the
    candidates have); the values go into one table, one segment per feature indexed by
    code, read by one gather.
    """
    vocabularies = cands.catalog.vocabularies
    offsets, shift, size = _code_layout(tuple(map(len, vocabularies)))
    flat: list[int] = []
    values: list[float] = []
    for j, state in ((0, user), (4, session)):
        if not state:
            continue
        cats: Mapping[str, float] = state.get("category") or {}
        brands: Mapping[str, float] = state.get("brand") or {}
        cat_total, brand_total = _top_level_total(cats), float(sum(brands.values()))
        for k, (mapping, total) in ((j, (cats, cat_total)), (j + 1, (brands, brand_total))):
            if total > 0:
                codes = vocabularies[_CODE_COLUMNS[k]].keyed()
                common = mapping.keys() & codes.keys()
                flat += [offsets[k] + codes[key] for key in common]
                values += [mapping[key] / total for key in common]
        if j == 0:  # the user's favourites
            top_cats = [c for c in cats if "/" not in c]
            for k, favourite in ((2, max(brands, key=brands.__getitem__) if brands else None),
                                 (3, max(top_cats, key=cats.__getitem__) if top_cats else None)):
                code = vocabularies[_CODE_COLUMNS[k]].keyed().get(favourite)  # type: ignore[arg-type]
                if code is not None:
                    flat.append(offsets[k] + code)
                    values.append(1.0)
    present: dict[int, set[int]] = {}  # a code column's codes among the candidates
    for j, state, prefixes in ((6, user, _LIFT_PREFIXES), (9, session, _LIFT_PREFIXES[:2])):
        exposure = (state or {}).get("exposure")
        if not exposure:
            continue
        for k, prefix in enumerate(prefixes, j):
            column = _CODE_COLUMNS[k]
            codes = vocabularies[column].keyed(prefix)
            common: Collection[str] = exposure.keys() & codes.keys()
            if len(common) > _LIFTS_UNFILTERED:  # only the candidates' values need a log
                here = present.get(column)
                if here is None:
                    here = present[column] = set(cands.codes[:, column].tolist())
                common = [key for key in common if codes[key] in here]
            flat += [offsets[k] + codes[key] for key in common]
            values += _lifts(exposure, common)
    if not flat:
        return np.zeros((len(cands), len(_CODE_COLUMNS)))
    table = np.zeros(size)
    table[flat] = values
    return table[cands.codes[:, _CODE_COLUMN_INDEX] + shift]


@lru_cache(maxsize=64)
def _code_layout(sizes: tuple[int, ...]) -> tuple[tuple[int, ...], npt.NDArray[np.intp], int]:
    """Where each code feature's segment starts in the table of :func:`code_features`
    (as a tuple and as an array), and the table's size, for vocabularies of ``sizes``.

    >>> offsets, shift, size = _code_layout((3, 2, 5, 4))
    >>> offsets[:3], size
    ((0, 3, 8), 43)
    """
    offsets = tuple(itertools.accumulate((sizes[c] for c in _CODE_COLUMNS[:-1]), initial=0))
    shift = np.array(offsets, dtype=np.intp)
    shift.setflags(write=False)
    return offsets, shift, offsets[-1] + sizes[_CODE_COLUMNS[-1]]


def item_features(user: State | None, session: State | None, cands: Candidates
                  ) -> npt.NDArray[np.float64]:
    """``(n, len(ITEM_FEATURES))``: whether the user (the session) viewed, engaged with
    (click, cart, purchase) or bought each item among their recent items, and the item's
    own lift (:func:`lift`), clicks, examinations and add-to-carts in the user's
    ``exposure`` (and its lift in the session's): add-to-carts and purchases follow a
    click, so they say how relevant it was without any position bias.

    >>> from learner.catalog import ItemCache
    >>> session = {"recent": [["view", "a", 1], ["purchase", "b", 2]],
    ...            "exposure": {"i:b": [0.2, 1.0]}}
    >>> block = item_features(None, session, ItemCache().gather(["a", "b", "c"]))
    >>> [dict(zip(ITEM_FEATURES, row.round(2).tolist())) for row in block][1]["session_item_lift"]
    1.43
    >>> block[:, ITEM_FEATURES.index("viewed_in_session")].tolist()
    [1.0, 0.0, 0.0]
    """
    width = len(ITEM_FEATURES)
    ones: list[int] = []  # flat positions of the 1.0 flags
    flat: list[int] = []  # flat positions of the other values
    values: list[float] = []
    for state, first, seen in ((user, 0, _USER_FLAG_COLUMNS), (session, 3, _SESSION_FLAG_COLUMNS)):
        recent = (state or {}).get("recent")
        if not recent:
            continue
        # by the item's exposure key, as the exposure entries below: the candidates' keys
        # are then the one index of the list to match (bit 1: viewed, 2: engaged, 4: bought)
        flags: dict[str, int] = {}
        for kind, item, _ts in recent:
            key = ITEM_KEY + item
            flags[key] = flags.get(key, 0) | _SEEN_FLAGS.get(kind, 2)
        for row, key in cands.matching(flags, by_key=True):
            at = row * width + first
            ones.extend([at + c for c in seen[flags[key]]])
    for state, counts in ((user, True), (session, False)):
        exposure = (state or {}).get("exposure")
        matches = cands.matching(exposure, by_key=True) if exposure else None
        if not matches:
            continue
        rows, keys = zip(*matches)
        lifts = _lifts(exposure, keys)  # type: ignore[arg-type]
        if counts:  # user_item_lift, _clicks, _examined, _carts
            for row, key, item_lift in zip(rows, keys, lifts):
                e = exposure[key]  # type: ignore[index]
                at = row * width
                flat += (at + 5, at + 6, at + 7, at + 8)
                values += (item_lift, e[1], e[0], e[2] if len(e) > 2 else 0.0)
        else:  # session_item_lift
            flat += [row * width + 9 for row in rows]
            values += lifts
    out = np.zeros((len(cands), width))
    cells = out.reshape(-1)
    if ones:
        cells[ones] = 1.0
    if flat:
        cells[flat] = values
    return out


_SEEN_FLAGS = {"view": 1, "purchase": 6}
# the columns (from the first of the state's) each combination of those bits sets: the
# user's three (viewed, engaged, bought), the session's two (viewed, engaged)
_USER_FLAG_COLUMNS = tuple(tuple(b for b in range(3) if f >> b & 1) for f in range(8))
_SESSION_FLAG_COLUMNS = tuple(tuple(b for b in range(2) if f >> b & 1) for f in range(8))


def click_features(user: State | None, cands: Candidates) -> npt.NDArray[np.float64]:
    """``(n, len(CLICK_FEATURES))``: the effects of the user's click model
    (:mod:`learner.click_model`, kept in the state by the worker) on each candidate: its
    brand's and its leaf category's (a lookup per distinct value), its vector dotted with
    the taste weights, the quadratic in its log price relative to its category's centre
    and the item's own (a lookup per candidate); 0 where the model has none.

    >>> from learner.catalog import ItemCache
    >>> cache = ItemCache()
    >>> _ = cache.put("a", {"brand": "acme", "category": "shoes", "embedding": [1.0, 0.0]})
    >>> _ = cache.put("b", {"brand": "zeta", "embedding": [0.0, 1.0]})
    >>> _ = cache.put("d", {"category": "shoes", "price": 20.0})
    >>> user = {"click_model": {"mu": -1.0, "brand": {"acme": 0.5}, "category": {"shoes": 0.2},
    ...                         "taste": [0.3, -0.4], "price": [0.5, -1.0],
    ...                         "price_center": {"shoes": 2.0}, "item": {"b": 1.0}}}
    >>> click_features(user, cache.gather(["a", "b", "c", "d"])).round(2).tolist()
    [[0.5, 0.2, 0.3, 0.0, 0.0], [0.0, 0.0, -0.4, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0], [0.0, 0.2, 0.0, -0.49, 0.0]]
    """
    out = np.zeros((len(cands), len(CLICK_FEATURES)))
    model = (user or {}).get(CLICK_MODEL_KEY)
    if not model:
        return out
    # brand and category effects and the categories' price centres: one table gather
    brands, found = cands.lookup(BRAND, model.get("brand") or {})
    leaves, more = cands.lookup(LEAF, model.get("category") or {})
    price = model.get("price")
    centers, known = cands.lookup(LEAF, model.get("price_center") or {}) if price else ([], [])
    if found or more or centers:
        coded = cands.spread((BRAND, LEAF, LEAF, LEAF), (brands, leaves, centers, centers),
                             found + more + known + [1.0] * len(known))
        out[:, :2] = coded[:, :2]
        if centers:
            rel = np.where(cands.has_price & (coded[:, 3] > 0),
                           cands.log_price - coded[:, 2], 0.0)
            out[:, 3] = rel * (price[0] + price[1] * rel)
    taste = model.get("taste")
    vectors = cands.vectors if taste else None
    if vectors is not None and len(taste) == vectors.shape[1]:
        out[:, 2] = vectors @ np.asarray(taste, dtype=np.float64)
    effects: Mapping[str, float] = model.get("item") or {}
    matches = cands.matching(effects)
    if matches:
        rows, keys = zip(*matches)
        out[list(rows), 4] = [effects[k] for k in keys]
    return out


def price_fit(state: State | None, cands: Candidates) -> npt.NDArray[np.float64]:
    """``(n,)`` closeness of each item's price to the state's usual one: a Gaussian in log
    price around the state's mean, with its spread floored at 25% (0 without a price).

    >>> from learner.catalog import ItemCache
    >>> cache = ItemCache()
    >>> _ = cache.put("a", {"price": 50.0})
    >>> price_fit({"price": [1.0, 3.9, 15.2]}, cache.gather(["a", "b"])).round(2).tolist()
    [1.0, 0.0]
    """
    w, s1, s2 = (state or {}).get("price") or (0.0, 0.0, 0.0)
    if w <= 0:
        return np.zeros(len(cands))
    mean = s1 / w
    sd = math.sqrt(max(s2 / w - mean * mean, 0.0) + 0.25 ** 2)  # floor: a 25% spread
    return np.where(cands.has_price, np.exp(-0.5 * ((cands.log_price - mean) / sd) ** 2), 0.0)


def taste_match(state: State | None, cands: Candidates) -> npt.NDArray[np.float64]:
    """``(n,)`` how well each candidate's item vector matches the state's taste: the dot
    product with the state's mean interacted vector, shrunk toward 0 by a prior of
    :data:`TASTE_PRIOR_WEIGHT` clicks (0 without a taste or item vectors).

    >>> from learner.catalog import ItemCache
    >>> cache = ItemCache()
    >>> for i, v in [("a", [1.0, 0.0]), ("b", [0.0, 1.0])]:
    ...     _ = cache.put(i, {"embedding": v})
    >>> taste_match({"taste": [3.0, 3.0, 0.0]}, cache.gather(["a", "b", "c"])).tolist()
    [0.75, 0.0, 0.0]
    """
    taste = (state or {}).get("taste")
    vectors = cands.vectors if taste else None
    if vectors is None or len(taste) != vectors.shape[1] + 1 or taste[0] <= 0:
        return np.zeros(len(cands))
    return vectors @ (np.asarray(taste[1:], dtype=np.float64) / (taste[0] + TASTE_PRIOR_WEIGHT))
