"""The catalog the features read: every known item's inputs, in columns.

:class:`ItemCache` keeps each item's :class:`~learner.items.ItemInfo` and, beside it, the
same values as one row of numpy arrays: its four hashes (item, category, brand, price
level), its log price, the codes of its leaf and top category, brand and price level
(:class:`Vocabulary`), its vector, its text embedding, and an inverted index from each
word of its text to the rows that have it. :meth:`ItemCache.gather` turns a request's
candidates into :class:`Candidates` by fancy indexing, so the features of a list are
numpy operations over columns (a gather of 100 vectors is one call, not 100 tuples
turned into an array). The worker fills the cache from the items stream, the scorer from
Redis; row 0 is the "unknown item" every missing candidate reads.

Examples
--------
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
>>> c.equals(LEAF, "shoes/running").tolist()
[1.0, 0.0]
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.items import VECTOR_DIM, ItemInfo, item_info, unknown_item_info
from learner.state import ITEM_KEY

__all__ = ["BRAND", "LEAF", "PRICE", "TOP", "Candidates", "ItemCache", "Vocabulary"]

#: Columns of :attr:`Candidates.codes`: leaf category, top category, brand, price-level key.
LEAF, TOP, BRAND, PRICE = 0, 1, 2, 3
_FIRST_ROWS = 1024


class Vocabulary:
    """Strings as stable integer codes, in first-seen order; code 0 stands for ``None``.

    >>> v = Vocabulary()
    >>> v.code("acme"), v.code("zeta"), v.code("acme"), v.code(None), v.find("nope")
    (1, 2, 1, 0, None)
    >>> v.values[2], len(v)
    ('zeta', 3)
    """

    __slots__ = ("_codes", "values")

    def __init__(self) -> None:
        self.values: list[str | None] = [None]
        self._codes: dict[str, int] = {}

    def code(self, value: str | None) -> int:
        """The code of ``value``, added if new."""
        if value is None:
            return 0
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code

    def find(self, value: str | None) -> int | None:
        """The code of ``value`` if it has one (``None`` is never found)."""
        return None if value is None else self._codes.get(value)

    def __len__(self) -> int:
        return len(self.values)


def _codes_of(info: ItemInfo) -> tuple[str | None, str | None, str | None, str | None]:
    """An item's values for the :data:`LEAF`, :data:`TOP`, :data:`BRAND`, :data:`PRICE`
    columns (the price column holds the price level's exposure key)."""
    levels = info.category_levels
    return (levels[-1] if levels else None, levels[0] if levels else None, info.brand,
            info.lift_keys[3])


class ItemCache:
    """``item_id -> ItemInfo``, bounded (least recently stored out), kept in columns."""

    def __init__(self, capacity: int = 1_000_000,
                 fallback: Callable[[str], Mapping[str, Any] | None] | None = None) -> None:
        self.capacity = capacity
        #: Where a miss is looked up (e.g. the worker's catalog table after a restart).
        self.fallback = fallback
        #: One vocabulary per code column (:data:`LEAF`, :data:`TOP`, :data:`BRAND`,
        #: :data:`PRICE`).
        self.vocabularies = tuple(Vocabulary() for _ in range(4))
        self._rows: OrderedDict[str, int] = OrderedDict()
        self._infos: list[ItemInfo | None] = [None]  # by row; row 0 is "unknown"
        self._free: list[int] = []
        self._postings: dict[str, set[int]] = {}  # word -> rows whose text has it
        self._odd_text: dict[int, npt.NDArray[np.float32]] = {}  # other widths, by row
        rows = _FIRST_ROWS
        self.hashes = np.zeros((rows, 4), dtype=np.uint64)
        self.codes = np.zeros((rows, 4), dtype=np.intp)
        self.log_price = np.full(rows, np.nan)
        self.vectors = np.zeros((rows, VECTOR_DIM))
        self.vector_len = np.zeros(rows, dtype=np.intp)
        #: ``(rows, d)`` text embeddings, ``d`` the width of the first one stored (zeros
        #: where an item has none); ``None`` until then.
        self.text: npt.NDArray[np.float32] | None = None

    # -- storing ------------------------------------------------------------------------

    def put(self, item_id: str, item: Mapping[str, Any] | None) -> ItemInfo:
        """Store (or, with ``None``, forget) an item; return its info."""
        if item is None:
            row = self._rows.pop(item_id, None)
            if row is not None:
                self._release(row)
            return unknown_item_info(item_id)
        info = item_info(item_id, item)
        row = self._rows.get(item_id)
        if row is None:
            row = self._allocate()
        else:
            self._unindex(row)
        self._write(row, info)
        self._rows[item_id] = row
        self._rows.move_to_end(item_id)
        if len(self._rows) > self.capacity:
            _, oldest = self._rows.popitem(last=False)
            self._release(oldest)
        return info

    def _allocate(self) -> int:
        if self._free:
            return self._free.pop()
        row = len(self._infos)
        self._infos.append(None)
        if row >= len(self.hashes):
            self._grow(2 * len(self.hashes))
        return row

    def _grow(self, rows: int) -> None:
        def grown(a: npt.NDArray[Any], fill: Any = 0) -> npt.NDArray[Any]:
            out = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
            out[: len(a)] = a
            return out

        self.hashes, self.codes = grown(self.hashes), grown(self.codes)
        self.log_price = grown(self.log_price, np.nan)
        self.vectors, self.vector_len = grown(self.vectors), grown(self.vector_len)
        if self.text is not None:
            self.text = grown(self.text)

    def _write(self, row: int, info: ItemInfo) -> None:
        self.hashes[row] = (info.item_hash, info.category_hash, info.brand_hash,
                            info.price_hash)
        self.codes[row] = [v.code(x) for v, x in zip(self.vocabularies, _codes_of(info))]
        self.log_price[row] = np.nan if info.log_price is None else info.log_price
        vector = info.vector or ()
        self.vectors[row] = 0.0
        self.vectors[row, : len(vector)] = vector
        self.vector_len[row] = len(vector)
        text = info.text_vector
        if text is not None and self.text is None:
            self.text = np.zeros((len(self.hashes), len(text)), dtype=np.float32)
        if self.text is not None:
            fits = text is not None and len(text) == self.text.shape[1]
            self.text[row] = text if fits else 0.0
            if text is not None and not fits:
                self._odd_text[row] = text
        for word in info.tokens:
            self._postings.setdefault(word, set()).add(row)
        # the info keeps no second copy of the text embedding (see _info)
        self._infos[row] = dataclasses.replace(info, text_vector=None) if text is not None \
            else info

    def _unindex(self, row: int) -> None:
        """Forget what indexes point at ``row`` (its words, an odd-width embedding)."""
        info = self._infos[row]
        if info is not None:
            for word in info.tokens:
                rows = self._postings.get(word)
                if rows is not None:
                    rows.discard(row)
                    if not rows:
                        del self._postings[word]
        self._odd_text.pop(row, None)

    def _release(self, row: int) -> None:
        self._unindex(row)
        self._infos[row] = None
        self._free.append(row)

    # -- reading ------------------------------------------------------------------------

    def _info(self, row: int) -> ItemInfo:
        info = self._infos[row]
        assert info is not None
        text = self._odd_text.get(row)
        if text is None and self.text is not None and self.text[row].any():
            text = self.text[row].copy()
            text.setflags(write=False)
        return info if text is None else dataclasses.replace(info, text_vector=text)

    def get(self, item_id: str) -> ItemInfo | None:
        """The item's info, or ``None`` when it is unknown."""
        row = self._rows.get(item_id)
        if row is not None:
            return self._info(row)
        if self.fallback is not None:
            entry = self.fallback(item_id)
            if entry is not None:
                return self.put(item_id, entry)
        return None

    def missing(self, item_ids: Iterable[str]) -> list[str]:
        """Which of ``item_ids`` are not cached."""
        return [i for i in item_ids if i not in self._rows]

    def infos(self, item_ids: Iterable[str]) -> list[ItemInfo]:
        """Infos of ``item_ids``, unknown items as empty infos."""
        return [self.get(i) or unknown_item_info(i) for i in item_ids]

    def gather(self, item_ids: Sequence[str]) -> Candidates:
        """The candidates ``item_ids`` as rows of the columns (row 0 where unknown)."""
        if self.fallback is not None:
            for item_id in self.missing(item_ids):
                self.get(item_id)  # stores it if the fallback knows it
        rows = np.fromiter(map(self._rows.get, item_ids, repeat(0)), dtype=np.intp,
                           count=len(item_ids))
        hashes = self.hashes[rows]
        if not rows.all():  # an unknown item still has its own hash
            unknown = np.flatnonzero(rows == 0).tolist()
            hashes[unknown, 0] = [unknown_item_info(item_ids[k]).item_hash for k in unknown]
        log_price = self.log_price[rows]
        has_price = ~np.isnan(log_price)
        return Candidates(item_ids=item_ids, rows=rows, hashes=hashes, codes=self.codes[rows],
                          log_price=np.where(has_price, log_price, 0.0), has_price=has_price,
                          catalog=self)

    def __len__(self) -> int:
        return len(self._rows)


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
        return None if self._id_rows is None else dict(zip(self.item_keys, range(len(self))))

    def spread(self, columns: Sequence[int], codes: Sequence[Sequence[int]],
               values: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """``(n, len(columns))``: in column ``j``, each candidate whose code in
        ``columns[j]`` is one of ``codes[j]`` gets that code's value, others 0; ``values``
        are the values of ``codes[0]``, then of ``codes[1]``, and so on (one table, one
        gather for all the columns).

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

    def equals(self, column: int, target: str | None) -> npt.NDArray[np.float64]:
        """1 where the candidate's value in ``column`` is ``target`` (never for ``None``)."""
        code = self.catalog.vocabularies[column].find(target)
        if code is None:
            return np.zeros(len(self.rows))
        return (self.codes[:, column] == code).astype(np.float64)

    @cached_property
    def item_keys(self) -> list[str]:
        """Each candidate's own ``exposure`` key (:func:`learner.state.exposure_keys`)."""
        return [ITEM_KEY + i for i in self.item_ids]

    @cached_property
    def vectors(self) -> npt.NDArray[np.float64] | None:
        """``(n, d)`` the candidates' item vectors (zeros where an item has none, or one
        of another length than the first); ``None`` when no candidate has one."""
        lengths = self.catalog.vector_len[self.rows]
        have = np.flatnonzero(lengths)
        if not len(have):
            return None
        d = int(lengths[have[0]])
        out = self.catalog.vectors[self.rows, :d]
        if (lengths[have] != d).any():
            out[lengths != d] = 0.0
        return out

    def text_match(self, query: frozenset[str]) -> npt.NDArray[np.float64]:
        """``(n,)`` the share of the query's words found in each candidate's text (0 when
        there is no query): one membership pass per query word over the rows."""
        n = len(self.rows)
        match = np.zeros(n)
        if not query:
            return match
        postings = self.catalog._postings
        rows: list[int] | None = None
        for word in query:
            having = postings.get(word)
            if having:
                rows = self.rows.tolist() if rows is None else rows
                match += np.fromiter(map(having.__contains__, rows), dtype=np.float64, count=n)
        return match / len(query)

    def text_similarity(self, q: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """``(n,)`` each candidate's text embedding dotted with ``q`` (0 where the item
        has none, or one of another width)."""
        n = len(self.rows)
        out = np.zeros(n)
        catalog = self.catalog
        if catalog.text is not None and catalog.text.shape[1] == len(q):
            # einsum, not @: a BLAS call here wakes OpenBLAS's threads, whose spinning
            # beside the request thread doubled the whole ranking's time on two cores
            out[:] = np.einsum("ij,j->i", catalog.text[self.rows], q)
        if catalog._odd_text:
            for k, row in enumerate(self.rows.tolist()):
                v = catalog._odd_text.get(row)
                if v is not None and len(v) == len(q):
                    out[k] = float(np.einsum("i,i->", v, q))
        return out
