"""The catalog the features read: every known item's inputs, in columns.

:class:`ItemCache` keeps each item's :class:`~learner.items.ItemInfo` and, beside it, the
same values as one row of numpy arrays: its four hashes (item, category, brand, price
level), its log price, the codes of its leaf and top category, brand and price level
(:class:`Vocabulary`), its vector, its text embedding, and an inverted index from each
word of its text to the rows that have it. :meth:`ItemCache.gather` turns a request's
candidates into :class:`~learner.candidates.Candidates` by fancy indexing, so the features of a list are
numpy operations over columns (a gather of 100 vectors is one call, not 100 tuples
turned into an array). The worker fills the cache from the items stream, the scorer from
Redis; row 0 is the "unknown item" every missing candidate reads.

Examples
--------
>>> cache = ItemCache()
>>> _ = cache.put("sku-1", {"title": "Trail running shoes", "category": "shoes/running",
...                         "brand": "Acme", "price": 59.9, "embedding": [3.0, 4.0]})
>>> c = cache.gather(["sku-1", "sku-2"])
>>> c.rows.tolist(), cache.vocabularies[BRAND].values[c.codes[0, BRAND]]
([1, 0], 'acme')
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.candidates import BRAND, LEAF, PRICE, TOP, Candidates
from learner.items import VECTOR_DIM, ItemInfo, item_info, unknown_item_info
from learner.row_cache import RowValues
from learner.state import ITEM_KEY

__all__ = ["BRAND", "LEAF", "PRICE", "TOP", "Candidates", "ItemCache", "Vocabulary"]

_FIRST_ROWS = 1024


class Vocabulary:
    """Strings as stable integer codes, in first-seen order; code 0 stands for ``None``.

    >>> v = Vocabulary()
    >>> v.code("acme"), v.code("zeta"), v.code("acme"), v.code(None)
    (1, 2, 1, 0)
    >>> v.values[2], len(v)
    ('zeta', 3)
    >>> v.keyed("b:")
    {'b:acme': 1, 'b:zeta': 2}
    """

    __slots__ = ("_codes", "_keyed", "values")

    def __init__(self) -> None:
        self.values: list[str | None] = [None]
        self._codes: dict[str, int] = {}
        self._keyed: dict[str, dict[str, int]] = {"": self._codes}

    def code(self, value: str | None) -> int:
        """The code of ``value``, added if new."""
        if value is None:
            return 0
        code = self._codes.get(value)
        if code is None:
            code = len(self.values)
            self.values.append(value)
            for prefix, keyed in self._keyed.items():
                keyed[prefix + value] = code  # prefix "" is _codes itself
        return code

    def keyed(self, prefix: str = "") -> dict[str, int]:
        """``prefix + value -> code`` for every value (read-only; kept current as values
        are added): a state's keys find their codes by one dict lookup each, or one set
        intersection with its keys."""
        keyed = self._keyed.get(prefix)
        if keyed is None:
            keyed = self._keyed[prefix] = {prefix + v: c for v, c in self._codes.items()}
        return keyed

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
        # by row, the item's own exposure key (learner.state.exposure_keys), made once: a
        # list's keys are then the same (already hashed) strings in every request
        self._item_keys: list[str | None] = [None]
        #: Per-query values of rows (text match and similarity; see ``stamps``).
        self.row_values = RowValues()
        self._writes = 0
        self._free: list[int] = []
        self._postings: dict[str, set[int]] = {}  # word -> rows whose text has it
        self._odd_text: dict[int, npt.NDArray[np.float32]] = {}  # other widths, by row
        rows = _FIRST_ROWS
        self.hashes = np.zeros((rows, 4), dtype=np.uint64)
        self.codes = np.zeros((rows, 4), dtype=np.intp)
        self.log_price = np.full(rows, np.nan)
        self.vectors = np.zeros((rows, VECTOR_DIM))
        self.vector_len = np.zeros(rows, dtype=np.intp)
        #: By row, a stamp changed by every write or release of the row (0: never
        #: written): a value kept for a row under an older stamp is stale.
        self.stamps = np.zeros(rows, dtype=np.int64)
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
        self._item_keys.append(None)
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
        self.stamps = grown(self.stamps)
        if self.text is not None:
            self.text = grown(self.text)

    def _write(self, row: int, info: ItemInfo) -> None:
        self._stamp(row)
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
        # the info's own string (its lift keys start with it): no second copy per item
        self._item_keys[row] = info.lift_keys[0] or ITEM_KEY + info.item_id

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

    def _stamp(self, row: int) -> None:
        self._writes += 1
        self.stamps[row] = self._writes

    def _release(self, row: int) -> None:
        self._stamp(row)
        self._unindex(row)
        self._infos[row] = None
        self._item_keys[row] = None
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

    def peek(self, item_id: str) -> ItemInfo | None:
        """:meth:`get` without the item's text embedding (``text_vector`` is ``None``):
        no copy is made, so it is the cheap way to read an item's other attributes."""
        row = self._rows.get(item_id)
        if row is not None:
            return self._infos[row]
        return self.get(item_id)

    @property
    def has_text(self) -> bool:
        """Whether any stored item has a text embedding."""
        return self.text is not None or bool(self._odd_text)

    @property
    def has_odd_text(self) -> bool:
        """Whether any stored item has a text embedding of another width than
        :attr:`text`'s."""
        return bool(self._odd_text)

    def odd_text(self, row: int) -> npt.NDArray[np.float32] | None:
        """The text embedding of ``row`` if it has one of another width than :attr:`text`'s."""
        return self._odd_text.get(row)

    def rows_with(self, word: str) -> set[int] | None:
        """The rows whose text has ``word`` (read-only; ``None`` for none)."""
        return self._postings.get(word)

    def missing(self, item_ids: Iterable[str]) -> list[str]:
        """Which of ``item_ids`` are not cached."""
        return [i for i in item_ids if i not in self._rows]

    def infos(self, item_ids: Iterable[str]) -> list[ItemInfo]:
        """Infos of ``item_ids``, unknown items as empty infos."""
        return [self.get(i) or unknown_item_info(i) for i in item_ids]

    def _rows_of(self, item_ids: Sequence[str]) -> npt.NDArray[np.intp]:
        """The row of each item (0 where unknown): one C-level lookup of all of them when
        every one is known, else one lookup each."""
        if len(item_ids) > 1:
            try:
                return np.array(itemgetter(*item_ids)(self._rows), dtype=np.intp)
            except KeyError:
                pass
        return np.fromiter(map(self._rows.get, item_ids, repeat(0)), dtype=np.intp,
                           count=len(item_ids))

    def item_keys(self, item_ids: Sequence[str], rows: npt.NDArray[np.intp]) -> list[str]:
        """Each item's own ``exposure`` key (``"i:" + item_id``), ``rows`` the items' rows
        (0 where unknown, as :meth:`gather` finds them): the catalog's own string where it
        knows the item (no new string to make and hash), else a new one.

        >>> cache = ItemCache()
        >>> _ = cache.put("a", {"brand": "Acme"})
        >>> cache.item_keys(["a", "b"], cache.gather(["a", "b"]).rows)
        ['i:a', 'i:b']
        """
        keys: list[Any] = list(map(self._item_keys.__getitem__, rows.tolist()))
        if not rows.all():
            for k in np.flatnonzero(rows == 0).tolist():
                keys[k] = ITEM_KEY + item_ids[k]
        return keys

    def gather(self, item_ids: Sequence[str]) -> Candidates:
        """The candidates ``item_ids`` as rows of the columns (row 0 where unknown)."""
        if self.fallback is not None:
            for item_id in self.missing(item_ids):
                self.get(item_id)  # stores it if the fallback knows it
        rows = self._rows_of(item_ids)
        # ndarray.take: a third of the time of fancy indexing (or np.take's wrapper)
        hashes = self.hashes.take(rows, axis=0)
        if not rows.all():  # an unknown item still has its own hash
            unknown = np.flatnonzero(rows == 0).tolist()
            hashes[unknown, 0] = [unknown_item_info(item_ids[k]).item_hash for k in unknown]
        log_price = self.log_price[rows]
        has_price = ~np.isnan(log_price)
        return Candidates(item_ids=item_ids, rows=rows, hashes=hashes, codes=self.codes.take(rows, axis=0),
                          log_price=np.where(has_price, log_price, 0.0), has_price=has_price,
                          catalog=self)

    def __len__(self) -> int:
        return len(self._rows)
