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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.hashing import _hash_str, cross, to_index
from learner.items import ItemCache, ItemInfo, text_match, tokenize, unknown_item_info
from learner.state import State
from learner.state_features import Columns, affinities, lifts, seen, taste_match
from learner.stats import ItemStats
from learner.text_encoder import default_encoder

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
    "item_popularity", "item_ctr", "text_match", "semantic_match",
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

    cols = Columns.of(infos)
    u_cat, u_brand, u_price, fav_b, fav_c = affinities(user, infos, cols)
    s_cat, s_brand, _, _, _ = affinities(session, infos, cols)
    s_viewed, s_engaged, _ = seen(session, item_ids)
    u_viewed, u_engaged, u_bought = seen(user, item_ids)
    u_lift, s_lift = lifts(user, item_ids, infos, cols), lifts(session, item_ids, infos, cols)
    u_taste, s_taste = taste_match(user, cols), taste_match(session, cols)
    if stats is not None:
        popularity, ctr = stats.popularity(h_item), stats.ctr(h_item)
    else:
        popularity, ctr = np.zeros(n), np.zeros(n)
    match = text_match(tokenize(query), [x.tokens for x in infos])
    semantic = semantic_match(query, infos)
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
        "semantic_match": semantic,
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


def semantic_match(query: str | None, infos: Sequence[ItemInfo]) -> npt.NDArray[np.float64]:
    """``(n,)`` cosine of the query's sentence embedding with each item's ``text_vector``
    (:mod:`learner.text_encoder`); 0 without a query, an encoder, or the item's vector.

    >>> semantic_match(None, [unknown_item_info("a")]).tolist()
    [0.0]
    """
    n = len(infos)
    encoder = default_encoder() if query else None
    vectors = [x.text_vector for x in infos] if encoder is not None else []
    if not any(v is not None for v in vectors):
        return np.zeros(n)
    assert encoder is not None and query is not None
    q = encoder.encode_one(query)
    dim = len(q)
    rows = [i for i, v in enumerate(vectors) if v is not None and len(v) == dim]
    out = np.zeros(n)
    if rows:  # one concatenate: np.stack costs three times as much for 100 vectors
        picked = vectors if len(rows) == n else [vectors[i] for i in rows]
        # einsum, not @: a BLAS call here wakes OpenBLAS's threads, whose spinning beside
        # the request thread doubled the whole ranking's time on two cores
        out[rows] = np.einsum("ij,j->i", np.concatenate(picked).reshape(len(rows), dim), q)
    return out


def _vector_crosses(ctx: RankContext, cols: Columns, bits: int
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
