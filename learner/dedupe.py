"""Recognise training records that were already applied: a bounded window of their ids.

The join upstream of the learner is at-least-once: after a worker crash it may send a
training record again, at a later offset of the examples topic. Every record has a
deterministic identity, its kind and its ``source`` (``topic/partition/offset`` of the
input event that completed it): a re-sent record has the same one. :func:`record_key`
hashes it to 64 bits; :class:`RecentIds` remembers the keys of the last ``capacity``
distinct records applied, oldest first, so the window is a plain ``uint64`` array in a
checkpoint. A duplicate is recognised as long as fewer than ``capacity`` distinct records
were applied between the original and it.

Examples
--------
>>> from streams.examples import LabeledList
>>> rec = LabeledList(impression_id="i", user_id="u", session_id=None, query=None,
...                   item_ids=["a"], positions=[1], labels=[1.0], weight=1.0,
...                   source="interactions/0/7")
>>> seen = RecentIds(capacity=2)
>>> seen.add(record_key(rec)), seen.add(record_key(rec))
(True, False)
>>> for k in (1, 2):
...     _ = seen.add(k)
>>> record_key(rec) in seen, seen.keys().tolist()    # pushed out of the window
(False, [1, 2])
"""

from __future__ import annotations

import hashlib
from collections import deque

import numpy as np
import numpy.typing as npt

from streams.examples import LabeledList

__all__ = ["RecentIds", "record_key"]


def record_key(rec: LabeledList) -> int:
    """64-bit key of a record's identity (its kind and source event); collisions among a
    window of a million keys have a probability below 1e-7."""
    digest = hashlib.blake2b(f"{rec.kind}\x1f{rec.source}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class RecentIds:
    """The keys of the last ``capacity`` distinct records, in the order they were added."""

    def __init__(self, capacity: int, keys: npt.ArrayLike = ()) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, not {capacity}")
        self.capacity = capacity
        self._order: deque[int] = deque()
        self._set: set[int] = set()
        for k in np.asarray(keys, dtype=np.uint64).tolist():
            self.add(int(k))

    def __contains__(self, key: int) -> bool:
        return key in self._set

    def __len__(self) -> int:
        return len(self._order)

    def add(self, key: int) -> bool:
        """Remember ``key``; ``False`` if it was already in the window (a duplicate)."""
        if key in self._set:
            return False
        if len(self._order) >= self.capacity:
            self._set.discard(self._order.popleft())
        self._order.append(key)
        self._set.add(key)
        return True

    def keys(self) -> npt.NDArray[np.uint64]:
        """The window, oldest first (what a checkpoint stores)."""
        return np.fromiter(self._order, dtype=np.uint64, count=len(self._order))
