"""Values of a catalog row under a request-level key (a query), kept across requests.

Some features of a candidate depend on nothing but the request's query and the item's
row of the catalog: the share of the query's words in the item's text and the similarity
of their sentence embeddings (:meth:`learner.candidates.Candidates.query_match`). Queries
repeat, and so do the items a search engine returns for them, so the catalog keeps each
such value once computed (:class:`RowValues`): a list then computes only its rows not yet
seen under its key. Each value is kept with the row's stamp (``ItemCache.stamps``, changed
by every write of the row): a value of a row written since is stale, computed again,
never served.

Examples
--------
>>> values = RowValues()
>>> calls = []
>>> def double(rows):
...     calls.append(rows.tolist())
...     return rows[:, None] * [2.0, 3.0]
>>> stamps = np.array([1, 1, 1, 1])  # by row
>>> rows = np.array([1, 2])
>>> values.get("q", rows, stamps[rows], double).tolist()
[[2.0, 3.0], [4.0, 6.0]]
>>> rows = np.array([2, 3])
>>> values.get("q", rows, stamps[rows], double)[:, 0].tolist(), calls
([4.0, 6.0], [[1, 2], [3]])
>>> stamps[2] = 7  # row 2 written again
>>> values.get("q", rows, stamps[rows], double)[:, 0].tolist(), calls[-1]
([4.0, 6.0], [2])
>>> RowValues(size=1).get("q", rows, stamps[rows], double)[:, 0].tolist()  # kept: none
[4.0, 6.0]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from itertools import repeat

import numpy as np
import numpy.typing as npt

__all__ = ["RowValues"]


class RowValues:
    """``key -> row -> values`` (a float64 row of a fixed width per key) for the most
    recently used keys, at most ``size`` rows of values in all: the least recently used
    keys go first. At the default, about 15 MB at most for the catalog's two query
    features (the values, their stamps and each key's row index)."""

    def __init__(self, size: int = 1 << 17) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._held = 0  # rows of values in all entries

    def get(self, key: Hashable, rows: npt.NDArray[np.intp], stamps: npt.NDArray[np.int64],
            compute: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float64]]
            ) -> npt.NDArray[np.float64]:
        """``(n, w)`` the values of each of ``rows`` (whose stamps are ``stamps``) under
        ``key``: those kept under the same stamp, and ``compute(rows)`` (``(m, w)``) of
        the others, one call for all of them, which are kept. The values are stored as
        computed: read back, they are the same floats.

        ``compute`` must give each row the values it would give it in any other list (a
        function of the row's contents alone), and always the same width.

        >>> values = RowValues(size=3)
        >>> one = np.array([0, 0])
        >>> values.get("a", np.array([1, 2]), one, lambda rows: rows[:, None] * 1.0).tolist()
        [[1.0], [2.0]]
        >>> values.get("b", np.array([5, 6]), one, lambda rows: rows[:, None] * 1.0).tolist()
        [[5.0], [6.0]]
        >>> list(values._entries), values._held  # "a" went first
        (['b'], 2)
        """
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        else:
            self._entries.move_to_end(key)
        row_list = rows.tolist()
        slots = np.fromiter(map(entry.slots.get, row_list, repeat(-1)), dtype=np.intp,
                            count=len(row_list))
        missing = slots < 0
        if entry.values is not None:  # kept under another stamp: the row was written since
            missing |= entry.stamps[slots] != stamps
        at = np.flatnonzero(missing)
        if len(at):
            fresh = compute(rows[at])
            slots[at] = entry.add(row_list, at.tolist(), fresh, stamps[at])
            self._held += len(at)
            while self._held > self.size and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._held -= dropped.used
            if self._held > self.size:  # this key alone: it starts over (after this list)
                self._held -= entry.used
                del self._entries[key]
        assert entry.values is not None
        return entry.values[slots]


class _Entry:
    """One key's values: ``slots`` maps a row to its row of ``values`` and ``stamps`` (of
    which the first ``used`` are filled; grown by doubling)."""

    __slots__ = ("slots", "stamps", "used", "values")

    def __init__(self) -> None:
        self.slots: dict[int, int] = {}
        self.used = 0
        self.values: npt.NDArray[np.float64] | None = None
        self.stamps: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)

    def add(self, row_list: list[int], at: list[int], fresh: npt.NDArray[np.float64],
            stamps: npt.NDArray[np.int64]) -> npt.NDArray[np.intp]:
        """Store ``fresh`` (``(m, w)``) and ``stamps`` as those of ``row_list[k]`` for
        ``k`` in ``at``; return their slots."""
        m, start = len(at), self.used
        values = self.values
        if values is None or start + m > len(values):
            size = max(2 * start, start + m, 16)
            grown = np.empty((size, fresh.shape[1]))
            grown_stamps = np.empty(size, dtype=np.int64)
            if values is not None:
                grown[:start] = values[:start]
                grown_stamps[:start] = self.stamps[:start]
            self.values = values = grown
            self.stamps = grown_stamps
        values[start:start + m] = fresh
        self.stamps[start:start + m] = stamps
        self.used = start + m
        self.slots.update(zip(map(row_list.__getitem__, at), range(start, start + m)))
        return np.arange(start, start + m)
