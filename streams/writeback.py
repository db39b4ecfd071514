"""Table writes held back for a batch: each changed key is written once, when it is done.

The worker's ``events`` agent takes its records in batches (``Stream.take_events``). The
pipeline reads and writes its tables through a :class:`WriteBack`: what the batch
changes stays in memory, reads see it first, and :meth:`WriteBack.flush` hands each
changed key to a sink once, with the partition of the last record that changed it (the
changelog partition a Faust table would have used), or :meth:`WriteBack.take` gives
them to a caller that writes them itself. A user who searched and clicked
three times in one batch costs one changelog record instead of four.

The agent flushes before the batch's records are acknowledged, so the offsets Faust
commits never run ahead of what the changelogs hold (Faust flushes its producer before
it commits).

Examples
--------
>>> table = {"a": 1, "c": 5}
>>> written = []
>>> wb = WriteBack(table, sink=lambda k, v, p: written.append((k, v, p)))
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
>>> wb.flush()
3
>>> written
[('a', 3, 0), ('b', 1, 0), ('c', DELETED, 1)]
>>> wb.pending
0
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

__all__ = ["DELETED", "Sink", "WriteBack", "mapping_sink"]


class _Deleted:
    """The value a sink receives for a key the batch removed."""

    def __repr__(self) -> str:
        return "DELETED"


DELETED: Any = _Deleted()

#: Writes one changed key: ``(key, value or DELETED, partition)``.
Sink = Callable[[str, Any, int | None], None]


def mapping_sink(table: MutableMapping[str, Any]) -> Sink:
    """A sink that writes into a plain mapping (tests, replays).

    >>> d = {"x": 1}
    >>> sink = mapping_sink(d)
    >>> sink("y", 2, None); sink("x", DELETED, None)
    >>> d
    {'y': 2}
    """

    def write(key: str, value: Any, partition: int | None) -> None:
        if value is DELETED:
            table.pop(key, None)
        else:
            table[key] = value

    return write


class WriteBack(MutableMapping[str, Any]):
    """A mapping over ``table`` that holds its writes until :meth:`flush`.

    Parameters
    ----------
    table
        What is read through: the Faust table (or a dict).
    sink
        Where :meth:`flush` writes each changed key; by default into ``table`` itself.

    Attributes
    ----------
    partition
        The partition of the record being processed; a write remembers it.
    """

    def __init__(self, table: MutableMapping[str, Any], sink: Sink | None = None) -> None:
        self.table = table
        self.sink = sink or mapping_sink(table)
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
        partition)``, for a caller that writes it itself (the worker awaits its sends).

        A key the batch removed that ``table`` never had is left out.
        """
        dirty, self._dirty = self._dirty, {}
        table = self.table
        return [(key, value, partition) for key, (value, partition) in dirty.items()
                if value is not DELETED or key in table]

    def flush(self) -> int:
        """Write every changed key once to the sink; return how many were written."""
        changed = self.take()
        for key, value, partition in changed:
            self.sink(key, value, partition)
        return len(changed)
