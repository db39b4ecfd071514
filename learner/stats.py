"""Time-decayed popularity and click-through counters per item, over hashed slots.

The learner updates them from every shown list and every labelled click; they travel in
the snapshot, so the scorer and the worker's feature code read the same numbers.

Examples
--------
>>> import numpy as np
>>> s = ItemStats(bits=8, half_life_ms=1000)
>>> h = np.array([11, 12], dtype=np.uint64)
>>> s.record(h, shown=np.ones(2), clicked=np.array([1.0, 0.0]), ts=0)
>>> s.ctr(h).round(3).tolist(), s.popularity(h).round(3).tolist()
([0.25, 0.083], [0.693, 0.0])
>>> s.record(h, shown=np.zeros(2), clicked=np.zeros(2), ts=1000)   # one half-life later
>>> s.popularity(h).round(3).tolist()
[0.405, 0.0]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.statedict import StateDict, copy_into, int_array, scalar

__all__ = ["ItemStats", "stats_of"]

#: Smoothing of the click-through rate towards a prior: (clicks + a) / (shown + b).
CTR_PRIOR_CLICKS = 0.5
CTR_PRIOR_SHOWN = 5.0


class ItemStats:
    """Decayed ``shown`` and ``clicked`` counts per hashed item slot."""

    def __init__(self, bits: int = 18, half_life_ms: float = 6 * 3600 * 1000,
                 shown: npt.NDArray[np.float32] | None = None,
                 clicked: npt.NDArray[np.float32] | None = None, ts: int | None = None) -> None:
        self.bits = bits
        self.half_life_ms = half_life_ms
        self.mask = np.uint64((1 << bits) - 1)
        self.shown = shown if shown is not None else np.zeros(1 << bits, dtype=np.float32)
        self.clicked = clicked if clicked is not None else np.zeros(1 << bits, dtype=np.float32)
        self.ts = ts

    def slots(self, item_hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
        """Slot of each item hash."""
        return (item_hashes & self.mask).astype(np.int64)

    def _decay_factor(self, ts: int) -> np.float32 | None:
        """The factor a decay to ``ts`` would apply, ``None`` when it would not run."""
        if self.ts is None or ts <= self.ts:
            return None
        factor = np.float32(0.5 ** ((ts - self.ts) / self.half_life_ms))
        return factor if factor < 0.9999 else None  # skip the pass for tiny steps

    def _decay_to(self, ts: int) -> None:
        if self.ts is None:
            self.ts = ts
        factor = self._decay_factor(ts)
        if factor is not None:
            self.shown *= factor
            self.clicked *= factor
            self.ts = ts

    def record_many(self, entries: Sequence[tuple[npt.NDArray[np.uint64], npt.ArrayLike,
                                                  npt.ArrayLike, int]]) -> None:
        """Add each ``(item_hashes, shown, clicked, ts)`` in order, decaying the counters
        to an entry's time first, as one :meth:`record` each would, but with one
        ``add.at`` per run of entries between two decays.

        >>> h = np.array([11, 12], dtype=np.uint64)
        >>> s = ItemStats(bits=8, half_life_ms=1000)
        >>> s.record_many([(h, np.ones(2), np.array([1.0, 0.0]), t) for t in (0, 0, 2000)])
        >>> s.shown[s.slots(h)].tolist(), s.clicked[s.slots(h)].tolist(), s.ts
        ([1.5, 1.5], [1.5, 0.0], 2000)
        """
        run: list[tuple[npt.NDArray[np.uint64], npt.ArrayLike, npt.ArrayLike]] = []
        for hashes, shown, clicked, ts in entries:
            if self.ts is None or self._decay_factor(ts) is not None:
                self._add(run)
                run = []
                self._decay_to(ts)
            run.append((hashes, shown, clicked))
        self._add(run)

    def _add(self, run: Sequence[tuple[npt.NDArray[np.uint64], npt.ArrayLike,
                                      npt.ArrayLike]]) -> None:
        if not run:
            return
        slots = self.slots(np.concatenate([h for h, _, _ in run]))
        np.add.at(self.shown, slots,
                  np.concatenate([np.asarray(x, dtype=np.float32) for _, x, _ in run]))
        np.add.at(self.clicked, slots,
                  np.concatenate([np.asarray(x, dtype=np.float32) for _, _, x in run]))

    def record(self, item_hashes: npt.NDArray[np.uint64], shown: npt.ArrayLike,
               clicked: npt.ArrayLike, ts: int) -> None:
        """Add shown and clicked amounts for these items at event time ``ts`` (ms)."""
        self.record_many([(item_hashes, shown, clicked, ts)])

    def state(self) -> StateDict:
        """The counters and the time they were last decayed to (copies)."""
        return {"shown": self.shown.copy(), "clicked": self.clicked.copy(),
                "ts": int_array(self.ts)}

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore a :meth:`state` in place (counters of the same size)."""
        copy_into(self.shown, state, "shown")
        copy_into(self.clicked, state, "clicked")
        self.ts = scalar(state, "ts")

    def popularity(self, item_hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
        """``log(1 + decayed clicks)`` of each item."""
        return self.popularity_ctr(item_hashes)[0]

    def ctr(self, item_hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.float64]:
        """Smoothed decayed click-through rate of each item."""
        return self.popularity_ctr(item_hashes)[1]

    def popularity_ctr(self, item_hashes: npt.NDArray[np.uint64]
                       ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """:meth:`popularity` and :meth:`ctr` of each item, with one gather of each
        counter (what the features read).

        >>> s = ItemStats(bits=8)
        >>> h = np.array([11, 12], dtype=np.uint64)
        >>> s.record(h, shown=np.ones(2), clicked=np.array([1.0, 0.0]), ts=0)
        >>> [x.round(3).tolist() for x in s.popularity_ctr(h)]
        [[0.693, 0.0], [0.25, 0.083]]
        """
        s = self.slots(item_hashes)
        clicked = self.clicked.take(s)
        return (np.log1p(clicked.astype(np.float64)),
                ((clicked + CTR_PRIOR_CLICKS) / (self.shown.take(s) + CTR_PRIOR_SHOWN)
                 ).astype(np.float64))


def stats_of(arrays: dict[str, npt.NDArray[np.float32]], meta: dict[str, object]
             ) -> ItemStats | None:
    """The counters stored in a snapshot's arrays and meta, or ``None`` if it has none."""
    if "stats_shown" not in arrays or "stats_clicked" not in arrays:
        return None
    ts = meta.get("stats_ts")
    return ItemStats(bits=int(meta["stats_bits"]),  # type: ignore[call-overload]
                     half_life_ms=float(meta["stats_half_life_ms"]),  # type: ignore[arg-type]
                     shown=arrays["stats_shown"], clicked=arrays["stats_clicked"],
                     ts=int(ts) if ts is not None else None)  # type: ignore[call-overload]
