"""Values of a catalog row under a request-level key (a query), kept across requests.

Some features of a candidate depend on nothing but the request's query and the item's
row of the catalog: the share of the query's words in the item's text and the similarity
of their sentence embeddings (:meth:`learner.candidates.Candidates.text_match` and
:meth:`~learner.candidates.Candidates.text_similarity`). Queries repeat, and so do the
items a search engine returns for them, so the catalog keeps each such value once
computed (:class:`RowValues`): a list then computes only its rows not yet seen under its
key. Any change to the catalog starts a new generation (:meth:`RowValues.invalidate`);
the values of an older one are dropped when next read, never served.

Examples
--------
>>> values = RowValues()
>>> calls = []
>>> def double(rows):
...     calls.append(rows.tolist())
...     return rows * 2.0
>>> values.get("q", np.array([1, 2]), double).tolist()
[2.0, 4.0]
>>> values.get("q", np.array([2, 3]), double).tolist(), calls
([4.0, 6.0], [[1, 2], [3]])
>>> values.invalidate()
>>> values.get("q", np.array([2]), double).tolist(), calls[-1]
([4.0], [2])
>>> RowValues(size=1).get("q", np.array([1, 2]), double).tolist()  # kept: none
[2.0, 4.0]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from itertools import repeat

import numpy as np
import numpy.typing as npt

__all__ = ["RowValues"]


class RowValues:
    """``key -> row -> value`` (float) for the most recently used keys, at most ``size``
    values in all (about 100 bytes each): the least recently used keys go first."""

    def __init__(self, size: int = 1 << 19) -> None:
        self.size = size
        #: Bumped by every change to the catalog: values of an older one are stale.
        self.generation = 0
        self._entries: OrderedDict[Hashable, tuple[int, dict[int, float]]] = OrderedDict()
        self._held = 0  # values in all entries

    def invalidate(self) -> None:
        """Forget every value (the catalog changed): lazily, as each key is next read."""
        self.generation += 1

    def get(self, key: Hashable, rows: npt.NDArray[np.intp],
            compute: Callable[[npt.NDArray[np.intp]], npt.NDArray[np.float64]]
            ) -> npt.NDArray[np.float64]:
        """``(n,)`` the value of each of ``rows`` under ``key``: those kept, and
        ``compute(rows)`` of the others (one call for all of them), which are kept.

        ``compute`` must give each row the value it would give it in any other list (a
        function of the row alone); a NaN it gives is computed again when next asked.

        >>> values = RowValues(size=3)
        >>> values.get("a", np.array([1, 2]), lambda rows: rows * 1.0).tolist()
        [1.0, 2.0]
        >>> values.get("b", np.array([5, 6]), lambda rows: rows * 1.0).tolist()  # "a" goes
        [5.0, 6.0]
        >>> list(values._entries), values._held
        (['b'], 2)
        """
        generation = self.generation  # read first: a change while computing wins
        entry = self._entries.get(key)
        if entry is None or entry[0] != generation:
            if entry is not None:
                self._held -= len(entry[1])
            entry = self._entries[key] = (generation, {})
        else:
            self._entries.move_to_end(key)
        kept = entry[1]
        row_list = rows.tolist()
        out = np.fromiter(map(kept.get, row_list, repeat(np.nan)), dtype=np.float64,
                          count=len(row_list))
        missing = np.flatnonzero(np.isnan(out))
        if len(missing):
            todo = rows[missing]
            fresh = compute(todo)
            out[missing] = fresh
            before = len(kept)
            kept.update(zip(todo.tolist(), fresh.tolist()))
            self._held += len(kept) - before
            while self._held > self.size and len(self._entries) > 1:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._held -= len(dropped)
            if self._held > self.size:  # this key alone: it starts over
                self._held -= len(kept)
                kept.clear()
        return out
