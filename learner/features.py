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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pybase64

from learner.candidates import Candidates
from learner.catalog import ItemCache
from learner.hashing import GOLDEN, _hash_str, cross, mix_inplace, to_index
from learner.items import tokenize
from learner.list_features import rank_score, relative_price, upstream_features
from learner.state import State
from learner.state_features import (
    CLICK_FEATURES,
    CODE_FEATURES,
    ITEM_FEATURES,
    click_features,
    code_features,
    item_features,
    price_fit,
    taste_match,
)
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
#: Numeric features (one learned weight each): those read from the state through the
#: candidates' codes and item ids (:mod:`learner.state_features`), then the others.
NUMERIC_FEATURES: tuple[str, ...] = CODE_FEATURES + ITEM_FEATURES + CLICK_FEATURES + (
    "user_price_affinity", "user_taste_match", "session_taste_match",
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
_CROSS_ALONE = ~_CROSS_CROSSED
_CROSS_ITEM_COLUMNS = np.flatnonzero(_CROSS_TARGET == _TARGET_COLUMN["item"])
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
    return pybase64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def _array(data: str | Sequence[Any], dtype: str) -> npt.NDArray[Any]:
    """An array from :func:`_b64`'s text, or from a JSON list (the older form)."""
    if isinstance(data, str):
        return np.frombuffer(pybase64.b64decode(data, validate=True), dtype=dtype)
    return np.asarray(data, dtype=dtype)


def normalize_query(query: str) -> str:
    """Lower-case and collapse whitespace, so equal queries hash equal.

    >>> normalize_query(" Running  Shoes ")
    'running shoes'
    """
    return " ".join(query.lower().split())


def featurize(ctx: RankContext, item_ids: Sequence[str], bits: int, *,
              base_scores: Sequence[float | None] | None = None,
              request_features: Sequence[Mapping[str, float]] | None = None,
              user: State | None = None, session: State | None = None,
              items: ItemCache | None = None, stats: ItemStats | None = None) -> FeatureBlock:
    """Features of each candidate in ``item_ids`` for the request ``ctx``."""
    n = len(item_ids)
    cands = (items if items is not None else _NO_CATALOG).gather(item_ids)
    # the candidates' hashes: item, category, brand, price level (half a natural-log unit
    # per bucket, about x1.65 in price); 0 where unknown
    hashes = cands.hashes
    h_item = hashes[:, 0]
    query = normalize_query(ctx.query) if ctx.query else None

    if stats is not None:
        popularity, ctr = stats.popularity_ctr(h_item)
    else:
        popularity = ctr = np.zeros(n)
    base_z, upstream = upstream_features(base_scores, n)
    # in the order of NUMERIC_FEATURES after the code, item and click-model features
    others = [price_fit(user, cands), taste_match(user, cands), taste_match(session, cands),
              popularity, ctr, *query_match(query, cands),
              base_z, upstream, relative_price(cands)]
    numeric_names: tuple[str, ...] = NUMERIC_FEATURES
    if request_features is not None:
        extra: list[str] = []
        for key in sorted({k for f in request_features for k in f}):
            raw = np.array([f.get(key, np.nan) for f in request_features], dtype=np.float64)
            have = ~np.isnan(raw)
            if have.all():  # the common case: every candidate has it, nothing to fill
                filled, ranks = raw, rank_score(raw)
            else:  # the missing get the median of the others (np.nanmedian's values)
                filled = np.where(have, raw, np.median(raw[have]) if have.any() else 0.0)
                ranks = np.where(have, rank_score(filled), 0.0)
            others.append(np.sign(filled) * np.log1p(np.abs(filled)))
            others.append(ranks)
            extra += [f"request:{key}", f"request_rank:{key}"]
        numeric_names += tuple(extra)
    vectors = cands.vectors
    dim = 0 if vectors is None else vectors.shape[1]
    user_hash = _hash_str(f"user={ctx.user_id}")

    # one (n, k) block of indices and one of values, filled part by part
    n_cross = len(CROSS_FEATURES)
    c = n_cross + len(numeric_names)
    index = np.empty((n, c + dim), dtype=np.int64)
    value = np.empty((n, c + dim), dtype=np.float32)
    _fill_crosses(index[:, :n_cross], value[:, :n_cross], hashes, bits,
                  *_side_hashes(ctx.user_id, ctx.session_id, query))
    index[:, n_cross:c] = _numeric_index(numeric_names, bits)
    # the numeric columns in the order of numeric_names, as one contiguous float64 block
    numeric = np.concatenate((code_features(user, session, cands),
                              item_features(user, session, cands), click_features(user, cands),
                              np.array(others).T), axis=1)
    # clipped to [-10, 10] (np.clip's own ufunc steps, without its Python wrapper), the
    # last step storing into the float32 block: the same values as clipping after the cast
    np.minimum(np.maximum(numeric, -10.0, out=numeric), 10.0, out=value[:, n_cross:c])
    if vectors is not None:
        # the user crossed with each dimension of the item vectors: one weight per user
        # and dimension, a per-user linear taste in the embedding space
        index[:, c:] = _vector_index(user_hash, dim, bits)
        value[:, c:] = vectors

    history = [r[1] for r in (user or {}).get("recent", [])[-DENSE_HISTORY:]]
    dense = DenseInputs(
        user=user_hash,
        history=np.array([_hash_str(f"item={i}") for i in history], dtype=np.uint64),
        items=h_item, categories=hashes[:, 1], brands=hashes[:, 2])
    return FeatureBlock(index=index, value=value,
                        names=_names(numeric_names, dim), dense=dense)


def _fill_crosses(index: npt.NDArray[np.int64], value: npt.NDArray[np.float32],
                  hashes: npt.NDArray[np.uint64], bits: int,
                  side_golden: npt.NDArray[np.uint64], absent: npt.NDArray[np.intp] | None
                  ) -> None:
    """Write the crosses' columns (:data:`CROSS_FEATURES`) into ``index`` and ``value``
    (``(n, len(CROSS_FEATURES))`` views of the block): column ``j`` is side token ``j``
    crossed with target ``j`` (:func:`learner.hashing.cross`), or the target alone, in one
    vectorized pass.

    >>> from learner.hashing import hash_tokens
    >>> hashes = np.array([[11, 22, 0, 44]], dtype=np.uint64)  # item, category, brand, price
    >>> index = np.empty((1, len(CROSS_FEATURES)), dtype=np.int64)
    >>> value = np.empty((1, len(CROSS_FEATURES)), dtype=np.float32)
    >>> _fill_crosses(index, value, hashes, 18, *_side_hashes("u", None, None))
    >>> user_x_item = to_index(cross(hash_tokens(["user=u"]), hashes[:, 0]), 18)
    >>> col = CROSS_FEATURES.index
    >>> bool(index[0, col("user_x_item")] == user_x_item[0]), int(index[0, col("item")])
    (True, 11)
    >>> int(index[0, col("session_x_item")]), value[0, col("user_x_brand")]
    (0, np.float32(0.0))
    """
    target = hashes[:, _CROSS_TARGET]
    h = mix_inplace(target ^ side_golden)  # contiguous: twice as fast as in the block
    np.copyto(h, target, where=_CROSS_ALONE)  # the targets alone are not crossed
    h &= np.uint64((1 << bits) - 1)
    index[:] = h.view(np.int64)
    np.not_equal(target, 0, out=value)  # 1 where the target is known
    value[:, _CROSS_ITEM_COLUMNS] = 1.0  # an unknown item still has its own hash
    if absent is not None:
        index[:, absent] = 0
        value[:, absent] = 0.0


@lru_cache(maxsize=4096)
def _side_hashes(user: str, session: str | None, query: str | None
                 ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp] | None]:
    """The hash of each cross's side token (0 for the target alone) times the golden
    ratio (the first step of :func:`learner.hashing.cross`), and the columns of the
    crosses without a side token in this request (``None`` when all have one); read-only.

    >>> side, absent = _side_hashes("u-1", None, "shoes")
    >>> [CROSS_FEATURES[j] for j in absent]
    ['session_x_item', 'session_x_category', 'session_x_brand', 'session_x_price']
    """
    tokens = {"user": user, "session": session, "query": query}
    side = np.array([_hash_str(f"{s}={tokens[s]}") if s is not None and tokens[s] is not None
                     else 0 for s in _CROSS_SIDE], dtype=np.uint64) * GOLDEN
    absent = np.flatnonzero([s is not None and tokens[s] is None for s in _CROSS_SIDE])
    side.setflags(write=False)
    absent.setflags(write=False)
    return side, (absent if len(absent) else None)


@lru_cache(maxsize=256)
def _names(numeric: tuple[str, ...], dim: int) -> tuple[str, ...]:
    return CROSS_FEATURES + numeric + tuple(f"user_x_vector:{k}" for k in range(dim))


_NO_CATALOG = ItemCache(capacity=0)
#: The words of a (normalized) query: :func:`learner.items.tokenize`, cached (queries repeat).
_query_words = lru_cache(maxsize=4096)(tokenize)


def query_match(query: str | None, cands: Candidates
                ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``text_match`` (the share of the query's words in each candidate's text) and
    ``semantic_match`` (the cosine of the query's sentence embedding with each item's
    ``text_vector``, :mod:`learner.text_encoder`; 0 without an encoder or the item's
    vector), kept per query and row by the catalog (:meth:`Candidates.query_match`);
    zeros without a query.

    >>> [x.tolist() for x in query_match(None, ItemCache().gather(["a"]))]
    [[0.0], [0.0]]
    """
    if not query:
        return np.zeros(len(cands)), np.zeros(len(cands))
    encoder = default_encoder()
    q = encoder.encode_one(query) if encoder is not None and cands.catalog.has_text else None
    both = cands.query_match(query, _query_words(query), q)
    return both[:, 0], both[:, 1]


@lru_cache(maxsize=4096)
def _vector_index(user: int, dim: int, bits: int) -> npt.NDArray[np.int64]:
    """``(dim,)`` the index of the user crossed with each vector dimension (read-only)."""
    idx = to_index(cross(np.full(1, user, dtype=np.uint64), _vector_hashes(dim)), bits)
    idx.setflags(write=False)
    return idx


@lru_cache(maxsize=8)
def _vector_hashes(dim: int) -> npt.NDArray[np.uint64]:
    return np.array([_hash_str(f"vector={k}") for k in range(dim)], dtype=np.uint64)


@lru_cache(maxsize=256)
def _numeric_index(names: tuple[str, ...], bits: int) -> npt.NDArray[np.int64]:
    """``(len(names),)`` the hashed index of each numeric feature (one weight each)."""
    h = np.array([_hash_str(f"num={name}") for name in names], dtype=np.uint64)
    return to_index(h, bits)
