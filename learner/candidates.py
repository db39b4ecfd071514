"""A request's candidates as rows of the catalog's columns (:mod:`learner.catalog`).

:meth:`learner.catalog.ItemCache.gather` makes a :class:`Candidates`; the features read
it: the hashes, codes and prices as ``(n, ...)`` arrays, the vectors and text embeddings
gathered on demand, the state's entries for the candidates' values looked up once per
distinct value (:meth:`Candidates.lookup`) and placed by one gather
(:meth:`Candidates.spread`).

Examples
--------
>>> from learner.catalog import ItemCache
>>> cache = ItemCache()
>>> _ = cache.put("sku-1", {"title": "Trail running shoes", "category": "shoes/running",
...                         "brand": "Acme", "price": 59.9, "embedding": [3.0, 4.0]})
>>> c = cache.gather(["sku-1", "sku-2"])
>>> c.rows.tolist(), c.has_price.tolist()
([1, 0], [True, False])
>>> c.vectors.tolist()
[[0.6, 0.8], [0.0, 0.0]]
>>> c.text_match(frozenset({"running", "shoe"})).tolist()
[1.0, 0.0]
>>> brands, found = c.lookup(BRAND, {"acme": 2.0})
>>> c.spread([BRAND], [brands], found).tolist()
[[2.0], [0.0]]
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from learner.catalog import ItemCache

__all__ = ["BRAND", "LEAF", "PRICE", "TOP", "Candidates"]

#: Columns of :attr:`Candidates.codes`: leaf category, top category, brand, price-level key.
LEAF, TOP, BRAND, PRICE = 0, 1, 2, 3


@dataclass(frozen=True, eq=False)
class Candidates:
    """A request's candidates as columns: ``hashes`` ``(n, 4)`` (item, category, brand,
    price level; 0 where unknown), ``codes`` ``(n, 4)`` (:data:`LEAF`, :data:`TOP`,
    :data:`BRAND`, :data:`PRICE` in the catalog's vocabularies; 0 where unknown), the log
    price (0 where unknown) and whether it is known."""

    item_ids: Sequence[str]
    rows: npt.NDArray[np.intp]
    hashes: npt.NDArray[np.uint64]
    codes: npt.NDArray[np.intp]
    log_price: npt.NDArray[np.float64]
    has_price: npt.NDArray[np.bool_]
    catalog: ItemCache
    _distinct: dict[tuple[int, str], dict[str, int]] = field(
        default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.rows)

    def distinct(self, column: int, prefix: str = "") -> dict[str, int]:
        """The distinct values in ``column`` (not "no value"), each with ``prefix`` in
        front, and their codes (cached per column and prefix).

        >>> from learner.catalog import ItemCache
        >>> cache = ItemCache()
        >>> _ = cache.put("a", {"brand": "Acme"})
        >>> cache.gather(["a", "b", "a"]).distinct(BRAND, "b:")
        {'b:acme': 1}
        """
        key = (column, prefix)
        out = self._distinct.get(key)
        if out is None:
            if prefix:
                out = {prefix + value: c for value, c in self.distinct(column).items()}
            else:
                names = self.catalog.vocabularies[column].values
                out = {names[c]: c for c in self._code_sets[column] if c}  # type: ignore[misc]
            self._distinct[key] = out
        return out

    @cached_property
    def _code_sets(self) -> list[set[int]]:
        return [set(column) for column in self.codes.T.tolist()]

    def lookup(self, column: int, mapping: Mapping[str, Any], prefix: str = ""
               ) -> tuple[list[int], list[Any]]:
        """The distinct codes of ``column`` whose value (with ``prefix``) is a key of
        ``mapping``, and what ``mapping`` holds for each (one set intersection, in C, then
        Python over the matches only). :meth:`spread` turns them into columns.

        >>> from learner.catalog import ItemCache
        >>> cache = ItemCache()
        >>> _ = cache.put("a", {"brand": "Acme"})
        >>> cache.gather(["a", "b"]).lookup(BRAND, {"acme": 3.0, "zeta": 1.0})
        ([1], [3.0])
        """
        values = self.distinct(column, prefix)
        common = values.keys() & mapping.keys()
        return [values[k] for k in common], [mapping[k] for k in common]

    def matching(self, mapping: Mapping[str, Any], by_key: bool = False
                 ) -> list[tuple[int, str]]:
        """``(row, key)`` of each candidate whose id (with ``by_key``, whose own
        ``exposure`` key, :attr:`item_keys`) is a key of ``mapping``: one set
        intersection, in C, when the ids are distinct.

        >>> from learner.catalog import ItemCache
        >>> c = ItemCache().gather(["a", "b", "c"])
        >>> c.matching({"c": 1, "z": 2}), c.matching({"i:a": 1}, by_key=True)
        ([(2, 'c')], [(0, 'i:a')])
        """
        index = self._key_rows if by_key else self._id_rows
        if index is None:  # an id is repeated: every row on its own
            keys = self.item_keys if by_key else self.item_ids
            return [(r, k) for r, k in enumerate(keys) if k in mapping]
        return [(index[k], k) for k in mapping.keys() & index.keys()]

    @cached_property
    def _id_rows(self) -> dict[str, int] | None:
        out = dict(zip(self.item_ids, range(len(self.item_ids))))
        return out if len(out) == len(self.item_ids) else None

    @cached_property
    def _key_rows(self) -> dict[str, int] | None:
        # the keys are the ids with one prefix: repeated exactly when an id is
        out = dict(zip(self.item_keys, range(len(self))))
        return out if len(out) == len(self) else None

    def spread(self, columns: Sequence[int], codes: Sequence[Sequence[int]],
               values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(n, len(columns))``: in column ``j``, each candidate whose code in
        ``columns[j]`` is one of ``codes[j]`` gets that code's value, others 0; ``values``
        are the values of ``codes[0]``, then of ``codes[1]``, and so on (one table, one
        gather for all the columns).

        >>> from learner.catalog import ItemCache
        >>> cache = ItemCache()
        >>> _ = cache.put("a", {"brand": "Acme", "category": "shoes"})
        >>> c = cache.gather(["a", "b", "a"])
        >>> brands, found = c.lookup(BRAND, {"acme": 3.0})
        >>> leaves, more = c.lookup(LEAF, {"shoes": 5.0})
        >>> c.spread([BRAND, LEAF], [brands, leaves], found + more).tolist()
        [[3.0, 5.0], [0.0, 0.0], [3.0, 5.0]]
        """
        vocabularies = self.catalog.vocabularies
        offsets, flat, size = [], [], 0
        for column, found in zip(columns, codes):
            offsets.append(size)
            flat += [size + code for code in found]
            size += len(vocabularies[column])
        if not flat:
            return np.zeros((len(self.rows), len(columns)))
        table = np.zeros(size)
        table[flat] = values
        return table[self.codes[:, columns] + np.array(offsets, dtype=np.intp)]

    @cached_property
    def item_keys(self) -> list[str]:
        """Each candidate's own ``exposure`` key (:func:`learner.state.exposure_keys`)."""
        return self.catalog.item_keys(self.item_ids, self.rows)

    @cached_property
    def vectors(self) -> npt.NDArray[np.float64] | None:
        """``(n, d)`` the candidates' item vectors (zeros where an item has none, or one
        of another length than the first); ``None`` when no candidate has one."""
        catalog = self.catalog
        lengths = catalog.vector_len[self.rows]
        d = int(lengths[0]) if len(lengths) else 0
        if d and (lengths == d).all():  # the common case: all of the first one's length
            return catalog.vectors[self.rows, :d]
        have = np.flatnonzero(lengths)
        if not len(have):
            return None
        d = int(lengths[have[0]])
        out = catalog.vectors[self.rows, :d]
        if (lengths[have] != d).any():
            out[lengths != d] = 0.0
        return out

    def text_match(self, query: frozenset[str]) -> npt.NDArray[np.float64]:
        """``(n,)`` the share of the query's words found in each candidate's text (0 when
        there is no query): one membership pass per query word over the rows."""
        if not query:
            return np.zeros(len(self.rows))
        return _text_match(self.catalog, self.rows, query)

    def text_similarity(self, q: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """``(n,)`` each candidate's text embedding dotted with ``q`` (0 where the item
        has none, or one of another width)."""
        return _text_similarity(self.catalog, self.rows, q)

    def query_match(self, key: Hashable, words: frozenset[str],
                    q: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float64]:
        """``(n, 2)``: :meth:`text_match` of ``words`` and :meth:`text_similarity` with
        ``q`` (0 without one), both kept per ``key`` (the query they come from) and row
        by the catalog (:class:`learner.row_cache.RowValues`): the rows not seen under
        this key yet are computed, the others read back, with one lookup for both.

        >>> from learner.catalog import ItemCache
        >>> cache = ItemCache()
        >>> _ = cache.put("a", {"title": "red shoe", "text_vector": [0.6, 0.8]})
        >>> q = np.array([1.0, 0.0], dtype=np.float32)
        >>> cache.gather(["a", "b"]).query_match("shoe", frozenset({"shoe"}), q).round(2).tolist()
        [[1.0, 0.6], [0.0, 0.0]]
        """
        catalog = self.catalog

        def compute(rows: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
            out = np.zeros((len(rows), 2))
            if words:
                out[:, 0] = _text_match(catalog, rows, words)
            if q is not None:
                out[:, 1] = _text_similarity(catalog, rows, q)
            return out

        # the similarity's zeros without any text embedding differ (in sign) from a dot
        # product with an item's zero row: a new key once the catalog has text
        return catalog.row_values.get(("query_match", key, catalog.has_text), self.rows,
                                      catalog.stamps[self.rows], compute)


def _text_match(catalog: ItemCache, rows: npt.NDArray[np.intp], query: frozenset[str]
                ) -> npt.NDArray[np.float64]:
    """:meth:`Candidates.text_match` of the catalog's ``rows`` (a non-empty query)."""
    n = len(rows)
    match = np.zeros(n)
    row_list: list[int] | None = None
    for word in query:
        having = catalog.rows_with(word)
        if having:
            row_list = rows.tolist() if row_list is None else row_list
            match += np.fromiter(map(having.__contains__, row_list), dtype=np.float64, count=n)
    return match / len(query)


def _text_similarity(catalog: ItemCache, rows: npt.NDArray[np.intp], q: npt.NDArray[np.float32]
                     ) -> npt.NDArray[np.float64]:
    """:meth:`Candidates.text_similarity` of the catalog's ``rows``; each row's value is the
    same in any list (einsum reduces each row on its own)."""
    if catalog.text is not None and catalog.text.shape[1] == len(q):
        # einsum, not @: a BLAS call here wakes OpenBLAS's threads, whose spinning
        # beside the request thread doubled the whole ranking's time on two cores
        out = np.einsum("ij,j->i", catalog.text.take(rows, axis=0), q).astype(np.float64)
    else:
        out = np.zeros(len(rows))
    if catalog.has_odd_text:
        for k, row in enumerate(rows.tolist()):
            v = catalog.odd_text(row)
            if v is not None and len(v) == len(q):
                out[k] = float(np.einsum("i,i->", v, q))
    return out
