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

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.hashing import _hash_str, cross, to_index
from learner.items import ItemCache, ItemInfo, item_info, text_match, tokenize
from learner.state import State, exposure_keys
from learner.stats import ItemStats

__all__ = [
    "CROSS_FEATURES",
    "DenseInputs",
    "FEATURE_NAMES",
    "FeatureBlock",
    "NUMERIC_FEATURES",
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
    "item_popularity", "item_ctr", "text_match",
    "base_score_z", "upstream_rank", "relative_price",
)
#: The names of the columns every block has (request features add ``request:*`` ones).
FEATURE_NAMES: tuple[str, ...] = CROSS_FEATURES + NUMERIC_FEATURES
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
        """A JSON-ready form (for the join table and the examples topic)."""
        d = self.dense
        return {"index": self.index.tolist(), "value": self.value.tolist(),
                "names": list(self.names),
                "dense": None if d is None else {
                    "user": d.user, "history": d.history.tolist(), "items": d.items.tolist(),
                    "categories": d.categories.tolist(), "brands": d.brands.tolist()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeatureBlock:
        """Inverse of :meth:`to_json`."""
        d = data.get("dense")
        u64 = np.uint64
        dense = None if d is None else DenseInputs(
            user=int(d["user"]), history=np.asarray(d["history"], dtype=u64),
            items=np.asarray(d["items"], dtype=u64),
            categories=np.asarray(d["categories"], dtype=u64),
            brands=np.asarray(d["brands"], dtype=u64))
        return cls(index=np.asarray(data["index"], dtype=np.int64).reshape(len(data["index"]), -1),
                   value=np.asarray(data["value"], dtype=np.float32).reshape(
                       len(data["value"]), -1),
                   names=tuple(data["names"]), dense=dense)


def _price_hash(log_price: float | None) -> int:
    return 0 if log_price is None else _hash_str(f"price_level={round(log_price * 2)}")


def normalize_query(query: str) -> str:
    """Lower-case and collapse whitespace, so equal queries hash equal.

    >>> normalize_query(" Running  Shoes ")
    'running shoes'
    """
    return " ".join(query.lower().split())


def _share(weights: Mapping[str, float], key: str | None, total: float) -> float:
    if key is None or total <= 0:
        return 0.0
    return float(weights.get(key, 0.0)) / total


def _top_level_total(weights: Mapping[str, float]) -> float:
    return float(sum(v for k, v in weights.items() if "/" not in k))


def _affinities(state: State | None, infos: Sequence[ItemInfo]
                ) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
    """Category share, brand share, price closeness, favourite brand, favourite category."""
    n = len(infos)
    if not state:
        zero = [0.0] * n
        return zero, zero, zero, zero, zero
    cats: Mapping[str, float] = state.get("category", {})
    brands: Mapping[str, float] = state.get("brand", {})
    cat_total = _top_level_total(cats)
    brand_total = float(sum(brands.values()))
    w, s1, s2 = state.get("price", [0.0, 0.0, 0.0])
    if w > 0:
        mean = s1 / w
        sd = math.sqrt(max(s2 / w - mean * mean, 0.0) + 0.25 ** 2)  # floor: a 25% spread
    fav_brand = max(brands, key=brands.__getitem__) if brands else None
    top_cats = [k for k in cats if "/" not in k]
    fav_cat = max(top_cats, key=cats.__getitem__) if top_cats else None
    cat_share, brand_share, price_fit, is_fav_b, is_fav_c = [], [], [], [], []
    for info in infos:
        leaf = info.category_levels[-1] if info.category_levels else None
        cat_share.append(_share(cats, leaf, cat_total))
        brand_share.append(_share(brands, info.brand, brand_total))
        if w > 0 and info.log_price is not None:
            price_fit.append(math.exp(-0.5 * ((info.log_price - mean) / sd) ** 2))
        else:
            price_fit.append(0.0)
        is_fav_b.append(1.0 if fav_brand is not None and info.brand == fav_brand else 0.0)
        top = info.category_levels[0] if info.category_levels else None
        is_fav_c.append(1.0 if fav_cat is not None and top == fav_cat else 0.0)
    return cat_share, brand_share, price_fit, is_fav_b, is_fav_c


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
#: Column of each kind of ``exposure`` key (see :func:`learner.state.exposure_keys`).
_LIFT_COLUMN = {"i": 0, "b": 1, "c": 2, "p": 3}


def _lifts(state: State | None, item_ids: Sequence[str], infos: Sequence[ItemInfo]
           ) -> npt.NDArray[np.float64]:
    """``(n, 7)`` the user's (or session's) log click-through lift on each item, its
    brand, its category and its price level: ``log(((C + k m) / (E + k)) / m)`` from the
    ``exposure`` counts (``E`` examinations, ``C`` clicks; see :mod:`learner.state`),
    shrunk to 0 by a prior of ``k`` examinations at rate ``m``; then the item's own ``C``
    and ``E``, whose weighted sum is the log-likelihood ratio of "a favourite" against
    "an ordinary item" under a click model with a rate per examination for each, and its
    add-to-carts and purchases (which follow a click, so say how relevant it was without
    any position bias).

    >>> from learner.items import item_info
    >>> state = {"exposure": {"i:a": [1.0, 0.0], "i:b": [0.2, 1.0]}}
    >>> _lifts(state, ["a", "b", "c"], [item_info(i, None) for i in "abc"]).round(2).tolist()
    [[-0.69, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1.43, 0.0, 0.0, 0.0, 1.0, 0.2, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    out = np.zeros((len(item_ids), 7), dtype=np.float64)
    exposure = (state or {}).get("exposure")
    if not exposure:
        return out
    m, k = LIFT_PRIOR_RATE, LIFT_PRIOR_WEIGHT
    for row, (item_id, info) in enumerate(zip(item_ids, infos)):
        attrs = {"category": info.category, "brand": info.brand, "price": info.price}
        for key in exposure_keys(item_id, attrs):
            entry = exposure.get(key)
            if entry is None:
                continue
            out[row, _LIFT_COLUMN[key[0]]] = math.log((entry[1] + k * m) / (entry[0] + k) / m)
            if key[0] == "i":  # the item's own counts
                out[row, 4:6] = entry[1], entry[0]
                out[row, 6] = entry[2] if len(entry) > 2 else 0.0
    return out


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
    infos = items.infos(item_ids) if items is not None else [item_info(i, None) for i in item_ids]
    h_item = np.fromiter((x.item_hash for x in infos), dtype=np.uint64, count=n)
    h_cat = np.fromiter((x.category_hash for x in infos), dtype=np.uint64, count=n)
    h_brand = np.fromiter((x.brand_hash for x in infos), dtype=np.uint64, count=n)
    has_cat = (h_cat != 0).astype(np.float32)
    has_brand = (h_brand != 0).astype(np.float32)
    query = normalize_query(ctx.query) if ctx.query else None

    sides = {"user": ctx.user_id, "session": ctx.session_id, "query": query}
    # price level: half a natural-log unit per bucket (about x1.65 in price)
    h_price = np.fromiter((_price_hash(x.log_price) for x in infos), dtype=np.uint64, count=n)
    targets = {"item": (h_item, np.ones(n, dtype=np.float32)), "category": (h_cat, has_cat),
               "brand": (h_brand, has_brand),
               "price": (h_price, (h_price != 0).astype(np.float32))}
    names: list[str] = []
    cols_idx: list[npt.NDArray[np.int64]] = []
    cols_val: list[npt.NDArray[np.float32]] = []
    for name in CROSS_FEATURES:
        side, _, target = name.partition("_x_")
        h, present = targets[target or side]
        if target:
            token = sides[side]
            if token is None:
                idx, val = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float32)
            else:
                s = np.full(n, _hash_str(f"{side}={token}"), dtype=np.uint64)
                idx, val = to_index(cross(s, h), bits), present
        else:
            idx, val = to_index(h, bits), present
        names.append(name)
        cols_idx.append(idx)
        cols_val.append(val)

    u_cat, u_brand, u_price, fav_b, fav_c = _affinities(user, infos)
    s_cat, s_brand, _, _, _ = _affinities(session, infos)
    s_viewed, s_engaged, _ = _seen(session, item_ids)
    u_viewed, u_engaged, u_bought = _seen(user, item_ids)
    u_lift, s_lift = _lifts(user, item_ids, infos), _lifts(session, item_ids, infos)
    if stats is not None:
        popularity, ctr = stats.popularity(h_item), stats.ctr(h_item)
    else:
        popularity, ctr = np.zeros(n), np.zeros(n)
    q_tokens = tokenize(query)
    match = [text_match(q_tokens, x.tokens) for x in infos]
    if base_scores is not None and any(b is not None for b in base_scores):
        bs = np.array([b if b is not None else np.nan for b in base_scores], dtype=np.float64)
        bs = np.where(np.isnan(bs), np.nanmin(bs), bs)
        base_z, upstream = _zscore(bs), _rank_score(bs)
    else:  # the order as sent is the upstream order
        base_z, upstream = np.zeros(n), _rank_score(-np.arange(n, dtype=np.float64))
    lp = np.array([x.log_price if x.log_price is not None else np.nan for x in infos])
    known = ~np.isnan(lp)
    rel_price = np.where(known, lp - (np.nanmean(lp) if known.any() else 0.0), 0.0)

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
    for name, values in numeric.items():
        names.append(name)
        cols_idx.append(np.full(n, to_index(np.array([_hash_str(f"num={name}")],
                                                     dtype=np.uint64), bits)[0]))
        cols_val.append(np.clip(np.asarray(values, dtype=np.float32), -10.0, 10.0))

    history = [r[1] for r in (user or {}).get("recent", [])][-DENSE_HISTORY:]
    dense = DenseInputs(
        user=_hash_str(f"user={ctx.user_id}"),
        history=np.fromiter((_hash_str(f"item={i}") for i in history), dtype=np.uint64),
        items=h_item, categories=h_cat, brands=h_brand)
    return FeatureBlock(index=np.stack(cols_idx, axis=1), value=np.stack(cols_val, axis=1),
                        names=tuple(names), dense=dense)
