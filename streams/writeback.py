"""Table writes held back for a batch: each changed key is written once, when it is done.

The worker's ``events`` agent takes its records in batches (``Stream.take_events``). The
pipeline reads and writes its tables through a :class:`WriteBack`: what the batch
changes stays in memory, reads see it first, and :meth:`WriteBack.take` gives each
changed key once, with the partition of the last record that changed it (the changelog
partition a Faust table would have used), to the caller that writes it (the worker sends
it to the changelog; :meth:`WriteBack.flush` writes it into a plain mapping). A user who
searched and clicked three times in one batch costs one changelog record instead of four.

The agent writes them before the batch's records are acknowledged, so the offsets Faust
commits never run ahead of what the changelogs hold (Faust flushes its producer before
it commits).

Examples
--------
>>> table = {"a": 1, "c": 5}
>>> wb = WriteBack(table)
>>> wb.partition = 0
>>> wb["a"] = 2
>>> wb["a"] = 3
>>> wb["b"] = 1
>>> wb.partition = 1
>>> wb.pop("c"), wb.pop("nothing", None)
(5, None)
>>> wb["a"], wb.get("b"), wb.get("c"), "c" in wb, table["a"]
(3, 1, None, False, 1)
>>> sorted(wb), len(wb)
(['a', 'b'], 2)
>>> wb.take()
[('a', 3, 0), ('b', 1, 0), ('c', DELETED, 1)]
>>> wb.pending, table
(0, {'a': 1, 'c': 5})
>>> wb["d"] = 4
>>> wb.flush(), table
(1, {'a': 1, 'c': 5, 'd': 4})
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

__all__ = ["DELETED", "WriteBack"]


class _Deleted:
    """The value :meth:`WriteBack.take` gives for a key the batch removed."""

    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()

class WriteBack(MutableMapping[str, Any]):
    """A mapping over ``table`` that holds its writes until :meth:`take` (or :meth:`flush`).

    Parameters
    ----------
    table
        What is read through: the Faust table (or a dict).

    Attributes
    ----------
    partition
        The partition of the record being processed; a write remembers it.
    """

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.partition: int | None = None
        self._dirty: dict[str, tuple[Any, int | None]] = {}

    @property
    def pending(self) -> int:
        """Keys changed since the last flush."""
        return len(self._dirty)

    def __getitem__(self, key: str) -> Any:
        held = self._dirty.get(key)
        if held is None:
            return self.table[key]
        if held[0] is DELETED:
            raise KeyError(key)
        return held[0]

    def get(self, key: str, default: Any = None) -> Any:
        held = self._dirty.get(key)
        if held is None:
            return self.table.get(key, default)
        return default if held[0] is DELETED else held[0]

    def __setitem__(self, key: str, value: Any) -> None:
        self._dirty[key] = (value, self.partition)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._dirty[key] = (DELETED, self.partition)

    def pop(self, key: str, *default: Any) -> Any:  # type: ignore[override]
        try:
            value = self[key]
        except KeyError:
            if default:
                return default[0]
            raise
        self._dirty[key] = (DELETED, self.partition)
        return value

    def __contains__(self, key: object) -> bool:
        held = self._dirty.get(key)  # type: ignore[call-overload]
        if held is None:
            return key in self.table
        return held[0] is not DELETED

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            if key not in self._dirty:
                yield key
        for key, (value, _) in self._dirty.items():
            if value is not DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def take(self) -> list[tuple[str, Any, int | None]]:
        """What changed since the last call, once per key: ``(key, value or DELETED,
        partition)``, for the caller to write (the worker awaits its changelog sends).

        A key the batch removed that ``table`` never had is left out.
        """
        dirty, self._dirty = self._dirty, {}
        table = self.table
        return [(key, value, partition) for key, (value, partition) in dirty.items()
                if value is not DELETED or key in table]

    def flush(self) -> int:
        """Write every changed key once into ``table`` (a plain mapping: tests, replays);
        return how many were written."""
        changed = self.take()
        for key, value, _ in changed:
            if value is DELETED:
                del self.table[key]
            else:
                self.table[key] = value
        return len(changed)
