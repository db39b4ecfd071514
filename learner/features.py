"""The one feature implementation that training and serving share.

Both the worker (when it logs an impression for training) and the scorer (when it ranks
a request) call :func:`featurize` with the same inputs: the request, the user's and the
session's state, the candidates' catalog entries and the item counters of the current
snapshot. It returns a :class:`FeatureBlock`:

* ``index``, ``value``: ``(n, k)`` hashed coordinates and values of the sparse part, one
  column per named feature (``names``), scored as one gather and one row sum;
* ``dense``: the ids the factorised part embeds (the user, their recent items, each
  candidate with its category and brand).

Feature families (see ``docs/model.md``):

* crosses that memorise who likes what: user, session and query each crossed with the
  item, its category and its brand; the item, category and brand alone;
* affinities from the state: the user's and the session's share of engagement with the
  item's category and brand, closeness to the user's usual price, favourite brand and
  category, and whether the item was viewed, clicked or bought before;
* item counters: decayed popularity and click-through rate;
* the query's match with the title, category, brand and tags;
* request-time values: ``base_score`` (z-scored within the list) and its rank, the item's
  price relative to the list, and every numeric request feature with its rank in the list.

Examples
--------
>>> ctx = RankContext(user_id="u-42", session_id=None, query="running shoes")
>>> block = featurize(ctx, ["sku-1", "sku-2"], bits=18, base_scores=[2.0, 1.0])
>>> block.index.shape == block.value.shape == (2, len(block.names))
True
>>> dict(zip(block.names, block.value[0].round(2)))["upstream_rank"]
np.float32(1.0)
"""

from __future__ import annotations

import binascii
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.hashing import _hash_str, cross, to_index
from learner.items import ItemCache, ItemInfo, text_match, tokenize, unknown_item_info
from learner.state import BRAND_KEY, CATEGORY_KEY, State
from learner.stats import ItemStats

__all__ = [
    "CROSS_FEATURES",
    "FEATURE_NAMES",
    "NUMERIC_FEATURES",
    "DenseInputs",
    "FeatureBlock",
    "RankContext",
    "featurize",
    "normalize_query",
]

#: Hashed crosses (value 1 when both sides are known).
CROSS_FEATURES: tuple[str, ...] = (
    "user_x_item", "user_x_category", "user_x_brand", "user_x_price",
    "session_x_item", "session_x_category", "session_x_brand", "session_x_price",
    "query_x_item", "query_x_category", "query_x_brand",
    "item", "category", "brand",
)
#: Numeric features (one learned weight each).
NUMERIC_FEATURES: tuple[str, ...] = (
    "user_category_affinity", "user_brand_affinity", "user_price_affinity",
    "session_category_affinity", "session_brand_affinity",
    "favourite_brand", "favourite_category",
    "viewed_in_session", "engaged_in_session", "viewed_by_user", "engaged_by_user",
    "bought_by_user",
    "user_item_lift", "user_brand_lift", "user_category_lift", "user_price_lift",
    "user_item_clicks", "user_item_examined", "user_item_carts",
    "session_item_lift", "session_brand_lift", "session_category_lift",
    "user_taste_match", "session_taste_match",
    "item_popularity", "item_ctr", "text_match",
    "base_score_z", "upstream_rank", "relative_price",
)
#: The names of the columns every block has (request features add ``request:*`` ones).
FEATURE_NAMES: tuple[str, ...] = CROSS_FEATURES + NUMERIC_FEATURES
# each cross as its side token (None: the target alone) and its target's hash column
_TARGET_COLUMN = {"item": 0, "category": 1, "brand": 2, "price": 3}
_CROSS_SIDE: tuple[str | None, ...] = tuple(
    name.partition("_x_")[0] if "_x_" in name else None for name in CROSS_FEATURES)
_CROSS_TARGET = np.array([_TARGET_COLUMN[name.partition("_x_")[2] or name]
                          for name in CROSS_FEATURES], dtype=np.int64)
_CROSS_CROSSED = np.array([side is not None for side in _CROSS_SIDE])
#: How many of the user's recent items the dense part embeds.
DENSE_HISTORY = 10


@dataclass(frozen=True)
class RankContext:
    """Who is asking, and for what."""

    user_id: str
    session_id: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class DenseInputs:
    """Hashes the factorised part embeds: ``user`` (scalar), ``history`` (h,), and per
    candidate ``items``, ``categories``, ``brands`` (n,); 0 means unknown."""

    user: int
    history: npt.NDArray[np.uint64]
    items: npt.NDArray[np.uint64]
    categories: npt.NDArray[np.uint64]
    brands: npt.NDArray[np.uint64]


@dataclass(frozen=True)
class FeatureBlock:
    """Features of ``n`` candidates."""

    index: npt.NDArray[np.int64]
    value: npt.NDArray[np.float32]
    names: tuple[str, ...]
    dense: DenseInputs | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return int(self.index.shape[0])

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready form (for the join table and the examples topic): the arrays as
        base64 of their little-endian bytes (decoding a record is then a ``frombuffer``,
        not a walk over nested lists), the names as a list.

        >>> b = FeatureBlock(np.array([[3, 5]]), np.array([[1.0, 0.5]], dtype=np.float32),
        ...                  ("a", "b"))
        >>> sorted(b.to_json())
        ['dense', 'index', 'names', 'shape', 'value']
        >>> back = FeatureBlock.from_json(b.to_json())
        >>> back.index.tolist(), back.value.tolist(), back.names
        ([[3, 5]], [[1.0, 0.5]], ('a', 'b'))
        """
        d = self.dense
        return {"shape": list(self.index.shape), "index": _b64(self.index, "<u4"),
                "value": _b64(self.value, "<f4"), "names": list(self.names),
                "dense": None if d is None else {
                    "user": d.user, "history": _b64(d.history, "<u8"),
                    "items": _b64(d.items, "<u8"), "categories": _b64(d.categories, "<u8"),
                    "brands": _b64(d.brands, "<u8")}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureBlock:
        """Inverse of :meth:`to_json`; also reads the older form with the arrays as nested
        JSON lists.

        >>> FeatureBlock.from_json({"index": [[3, 5]], "value": [[1.0, 0.5]],
        ...                         "names": ["a", "b"]}).index.tolist()
        [[3, 5]]
        """
        d = data.get("dense")
        dense = None if d is None else DenseInputs(
            user=int(d["user"]), history=_array(d["history"], "<u8"),
            items=_array(d["items"], "<u8"), categories=_array(d["categories"], "<u8"),
            brands=_array(d["brands"], "<u8"))
        index, value = data["index"], data["value"]
        if isinstance(index, str):
            shape = tuple(data["shape"])
            return cls(index=_array(index, "<u4").astype(np.int64).reshape(shape),
                       value=_array(value, "<f4").astype(np.float32, copy=False).reshape(shape),
                       names=tuple(data["names"]), dense=dense)
        return cls(index=np.asarray(index, dtype=np.int64).reshape(len(index), -1),
                   value=np.asarray(value, dtype=np.float32).reshape(len(value), -1),
                   names=tuple(data["names"]), dense=dense)


def _b64(a: npt.NDArray[Any], dtype: str) -> str:
    # indices are below 2**bits (at most 2**32: "<u4" holds them)
    return binascii.b2a_base64(np.ascontiguousarray(a, dtype=dtype).tobytes(),
                               newline=False).decode("ascii")


def _array(data: str | Sequence[Any], dtype: str) -> npt.NDArray[Any]:
    """An array from :func:`_b64`'s text, or from a JSON list (the older form)."""
    if isinstance(data, str):
        return np.frombuffer(binascii.a2b_base64(data), dtype=dtype)
    return np.asarray(data, dtype=dtype)


def normalize_query(query: str) -> str:
    """Lower-case and collapse whitespace, so equal queries hash equal.

    >>> normalize_query(" Running  Shoes ")
    'running shoes'
    """
    return " ".join(query.lower().split())


def _top_level_total(weights: Mapping[str, float]) -> float:
    return float(sum(v for k, v in weights.items() if "/" not in k))


def _affinities(state: State | None, infos: Sequence[ItemInfo],
                cols: _Columns | None = None
                ) -> tuple[npt.NDArray[np.float64], ...]:
    """Category share, brand share, price closeness, favourite brand, favourite category.

    ``cols`` are the candidates' attributes as :class:`_Columns` (made here if not given);
    each value is computed once per distinct category, brand or price.
    """
    n = len(infos)
    if not state:
        zero = np.zeros(n)
        return zero, zero, zero, zero, zero
    c = cols if cols is not None else _Columns.of(infos)
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


class _Codes:
    """One attribute of the candidates as codes into its distinct values.

    >>> c = _Codes(["a", None, "b", "a"])
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
class _Columns:
    """The candidates' attributes that the state features read, made once per request."""

    leaf: _Codes
    brand: _Codes
    price: _Codes
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
    def of(cls, infos: Sequence[ItemInfo]) -> _Columns:
        lp = np.array([x.log_price if x.log_price is not None else np.nan for x in infos],
                      dtype=np.float64)
        has_price = ~np.isnan(lp)
        return cls(leaf=_Codes([x.category_levels[-1] if x.category_levels else None
                                for x in infos]),
                   brand=_Codes([x.brand for x in infos]),
                   price=_Codes([x.lift_keys[3] for x in infos]),
                   tops=[x.category_levels[0] if x.category_levels else None for x in infos],
                   item_lift_keys=[x.lift_keys[0] for x in infos],
                   log_price=np.where(has_price, lp, 0.0), has_price=has_price, infos=infos)

    @property
    def lift(self) -> tuple[tuple[_Codes, str], ...]:
        """The codes whose values make the brand, category and price-level exposure keys
        (:func:`learner.state.exposure_keys`), with the prefix that makes each key."""
        return (self.brand, BRAND_KEY), (self.leaf, CATEGORY_KEY), (self.price, "")


def _seen(state: State | None, item_ids: Sequence[str]) -> tuple[list[float], list[float],
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


def _lifts(state: State | None, item_ids: Sequence[str], infos: Sequence[ItemInfo],
           cols: _Columns | None = None) -> npt.NDArray[np.float64]:
    """``(n, 7)`` the user's (or session's) log click-through lift on each item, its
    brand, its category and its price level: ``log(((C + k m) / (E + k)) / m)`` from the
    ``exposure`` counts (``E`` examinations, ``C`` clicks; see :mod:`learner.state`),
    shrunk to 0 by a prior of ``k`` examinations at rate ``m``; then the item's own ``C``
    and ``E``, whose weighted sum is the log-likelihood ratio of "a favourite" against
    "an ordinary item" under a click model with a rate per examination for each, and its
    add-to-carts and purchases (which follow a click, so say how relevant it was without
    any position bias). ``cols`` are the candidates' attributes as :class:`_Columns` (made
    here if not given).

    >>> from learner.items import item_info
    >>> state = {"exposure": {"i:a": [1.0, 0.0], "i:b": [0.2, 1.0]}}
    >>> _lifts(state, ["a", "b", "c"], [item_info(i, None) for i in "abc"]).round(2).tolist()
    [[-0.69, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.43, 0.0, 0.0, 0.0, 1.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    n = len(item_ids)
    out = np.zeros((n, 7), dtype=np.float64)
    exposure = (state or {}).get("exposure")
    if not exposure:
        return out
    c = cols if cols is not None else _Columns.of(infos)
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


def _taste_match(state: State | None, cols: _Columns) -> npt.NDArray[np.float64]:
    """``(n,)`` how well each candidate's item vector matches the state's taste: the dot
    product with the state's mean interacted vector, shrunk toward 0 by a prior of
    :data:`TASTE_PRIOR_WEIGHT` clicks (0 without a taste or item vectors).

    >>> from learner.items import item_info
    >>> infos = [item_info("a", {"embedding": [1.0, 0.0]}), item_info("b", {"embedding": [0.0, 1.0]}),
    ...          item_info("c", None)]
    >>> _taste_match({"taste": [3.0, 3.0, 0.0]}, _Columns.of(infos)).tolist()
    [0.75, 0.0, 0.0]
    """
    taste = (state or {}).get("taste")
    vectors = cols.vectors if taste else None
    if vectors is None or len(taste) != vectors.shape[1] + 1 or taste[0] <= 0:
        return np.zeros(len(cols.infos))
    return vectors @ (np.asarray(taste[1:], dtype=np.float64) / (taste[0] + TASTE_PRIOR_WEIGHT))


def _zscore(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def _rank_score(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1 for the largest value of the list, falling as 1 / log2(rank + 1)."""
    order = np.argsort(-x, kind="stable")
    rank = np.empty(len(x), dtype=np.float64)
    rank[order] = np.arange(1, len(x) + 1)
    return 1.0 / np.log2(rank + 1.0)


def featurize(ctx: RankContext, item_ids: Sequence[str], bits: int, *,
              base_scores: Sequence[float | None] | None = None,
              request_features: Sequence[Mapping[str, float]] | None = None,
              user: State | None = None, session: State | None = None,
              items: ItemCache | None = None, stats: ItemStats | None = None) -> FeatureBlock:
    """Features of each candidate in ``item_ids`` for the request ``ctx``."""
    n = len(item_ids)
    infos = (items.infos(item_ids) if items is not None
             else [unknown_item_info(i) for i in item_ids])
    # the candidates' hashes: item, category, brand, price level (half a natural-log unit
    # per bucket, about x1.65 in price); 0 where unknown
    hashes = np.array([(x.item_hash, x.category_hash, x.brand_hash, x.price_hash)
                       for x in infos], dtype=np.uint64).reshape(n, 4)
    h_item, h_cat, h_brand = hashes[:, 0], hashes[:, 1], hashes[:, 2]
    query = normalize_query(ctx.query) if ctx.query else None
    tokens = {"user": ctx.user_id, "session": ctx.session_id, "query": query}
    # every cross in one vectorized pass: column j crosses side token j with target j
    side_hash = np.array([_hash_str(f"{side}={tokens[side]}")
                          if side is not None and tokens[side] is not None else 0
                          for side in _CROSS_SIDE], dtype=np.uint64)
    target = hashes[:, _CROSS_TARGET]
    cross_idx = to_index(np.where(_CROSS_CROSSED, cross(side_hash, target), target), bits)
    present = (hashes != 0).astype(np.float32)
    present[:, 0] = 1.0
    cross_val = present[:, _CROSS_TARGET]
    absent = np.array([side is not None and tokens[side] is None for side in _CROSS_SIDE])
    if absent.any():
        cross_idx[:, absent] = 0
        cross_val[:, absent] = 0.0
    names: list[str] = list(CROSS_FEATURES)

    cols = _Columns.of(infos)
    u_cat, u_brand, u_price, fav_b, fav_c = _affinities(user, infos, cols)
    s_cat, s_brand, _, _, _ = _affinities(session, infos, cols)
    s_viewed, s_engaged, _ = _seen(session, item_ids)
    u_viewed, u_engaged, u_bought = _seen(user, item_ids)
    u_lift, s_lift = _lifts(user, item_ids, infos, cols), _lifts(session, item_ids, infos, cols)
    u_taste, s_taste = _taste_match(user, cols), _taste_match(session, cols)
    if stats is not None:
        popularity, ctr = stats.popularity(h_item), stats.ctr(h_item)
    else:
        popularity, ctr = np.zeros(n), np.zeros(n)
    match = text_match(tokenize(query), [x.tokens for x in infos])
    if base_scores is not None and any(b is not None for b in base_scores):
        bs = np.array([b if b is not None else np.nan for b in base_scores], dtype=np.float64)
        bs = np.where(np.isnan(bs), np.nanmin(bs), bs)
        base_z, upstream = _zscore(bs), _rank_score(bs)
    else:  # the order as sent is the upstream order
        base_z, upstream = np.zeros(n), _rank_score(-np.arange(n, dtype=np.float64))
    known = cols.has_price
    rel_price = np.where(known, cols.log_price - (cols.log_price[known].mean() if known.any()
                                                  else 0.0), 0.0)

    numeric = {
        "user_category_affinity": u_cat, "user_brand_affinity": u_brand,
        "user_price_affinity": u_price, "session_category_affinity": s_cat,
        "session_brand_affinity": s_brand, "favourite_brand": fav_b,
        "favourite_category": fav_c, "viewed_in_session": s_viewed,
        "engaged_in_session": s_engaged, "viewed_by_user": u_viewed,
        "engaged_by_user": u_engaged, "bought_by_user": u_bought,
        "user_item_lift": u_lift[:, 0], "user_brand_lift": u_lift[:, 1],
        "user_category_lift": u_lift[:, 2], "user_price_lift": u_lift[:, 3],
        "user_item_clicks": u_lift[:, 4], "user_item_examined": u_lift[:, 5],
        "user_item_carts": u_lift[:, 6],
        "session_item_lift": s_lift[:, 0], "session_brand_lift": s_lift[:, 1],
        "session_category_lift": s_lift[:, 2],
        "user_taste_match": u_taste, "session_taste_match": s_taste,
        "item_popularity": popularity, "item_ctr": ctr, "text_match": match,
        "base_score_z": base_z, "upstream_rank": upstream, "relative_price": rel_price,
    }
    if request_features is not None:
        keys = sorted({k for f in request_features for k in f})
        for key in keys:
            raw = np.array([f.get(key, np.nan) for f in request_features], dtype=np.float64)
            have = ~np.isnan(raw)
            filled = np.where(have, raw, np.nanmedian(raw) if have.any() else 0.0)
            numeric[f"request:{key}"] = np.sign(filled) * np.log1p(np.abs(filled))
            numeric[f"request_rank:{key}"] = np.where(have, _rank_score(filled), 0.0)
    names.extend(numeric)
    num_idx = np.broadcast_to(_numeric_index(tuple(numeric), bits), (n, len(numeric)))
    num_val = np.clip(np.array(list(numeric.values()), dtype=np.float32).reshape(
        len(numeric), n).T, -10.0, 10.0)

    vec_idx, vec_val = _vector_crosses(ctx, cols, bits)
    names.extend(f"user_x_vector:{k}" for k in range(vec_idx.shape[1]))

    history = [r[1] for r in (user or {}).get("recent", [])][-DENSE_HISTORY:]
    dense = DenseInputs(
        user=_hash_str(f"user={ctx.user_id}"),
        history=np.fromiter((_hash_str(f"item={i}") for i in history), dtype=np.uint64),
        items=h_item, categories=h_cat, brands=h_brand)
    return FeatureBlock(index=np.concatenate([cross_idx, num_idx, vec_idx], axis=1),
                        value=np.concatenate([cross_val, num_val, vec_val], axis=1),
                        names=tuple(names), dense=dense)


def _vector_crosses(ctx: RankContext, cols: _Columns, bits: int
                    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The user crossed with each dimension of the item vectors: ``(n, d)`` indices and
    values (the vectors' components), so the sparse part learns one weight per user and
    dimension, a per-user linear taste in the embedding space; ``(n, 0)`` without vectors.
    """
    vectors = cols.vectors
    n = len(cols.infos)
    if vectors is None:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.float32)
    user = np.full(1, _hash_str(f"user={ctx.user_id}"), dtype=np.uint64)
    idx = to_index(cross(user, _vector_hashes(vectors.shape[1])), bits)
    return np.broadcast_to(idx, (n, len(idx))), vectors.astype(np.float32)


@lru_cache(maxsize=8)
def _vector_hashes(dim: int) -> npt.NDArray[np.uint64]:
    return np.array([_hash_str(f"vector={k}") for k in range(dim)], dtype=np.uint64)


@lru_cache(maxsize=256)
def _numeric_index(names: tuple[str, ...], bits: int) -> npt.NDArray[np.int64]:
    """``(len(names),)`` the hashed index of each numeric feature (one weight each)."""
    h = np.array([_hash_str(f"num={name}") for name in names], dtype=np.uint64)
    return to_index(h, bits)
