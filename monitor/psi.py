"""Population stability index (PSI) of a distribution against a reference window.

``PSI = sum_b (a_b - e_b) ln(a_b / e_b)`` over bins ``b``, with ``e`` the reference
share and ``a`` the recent share of each bin (Yurdakul, "Statistical properties of
population stability index", 2018). Bins are the reference's deciles, so each holds
about a tenth of the reference; shares are floored at ``1e-4`` so an empty bin does not
make the index infinite. Rules of thumb: below 0.1 stable, 0.1 to 0.25 a moderate
shift, above 0.25 a major one.

Examples
--------
>>> rng = np.random.default_rng(0)
>>> index = StabilityIndex(reference_size=5000, window=5000)
>>> index.update(rng.normal(0, 1, 5000))           # the reference
>>> index.update(rng.normal(0, 1, 5000)); round(index.value(), 3)
0.005
>>> index.update(rng.normal(1, 1, 5000)); round(index.value(), 2)   # the mean moved by 1 sd
0.95
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

__all__ = ["StabilityIndex", "psi"]

_FLOOR = 1e-4


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """PSI of two vectors of bin counts (or shares).

    >>> round(psi([50, 50], [50, 50]), 6), round(psi([50, 50], [90, 10]), 3)
    (0.0, 0.879)
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    e = np.maximum(e / max(e.sum(), 1e-12), _FLOOR)
    a = np.maximum(a / max(a.sum(), 1e-12), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


class StabilityIndex:
    """PSI of one stream of values: the first ``reference_size`` values are the reference,
    the last ``window`` values the recent distribution.

    Parameters
    ----------
    reference_size
        Values collected before the bins are fixed.
    window
        Recent values compared with the reference (kept as per-update bin counts).
    bins
        Quantile bins of the reference.
    """

    def __init__(self, reference_size: int = 5000, window: int = 5000, bins: int = 10) -> None:
        self.reference_size = reference_size
        self.window = window
        self.bins = bins
        self._ref_values: list[npt.NDArray[np.float64]] = []
        self._ref_n = 0
        self.edges: npt.NDArray[np.float64] | None = None
        self._expected: npt.NDArray[np.float64] | None = None
        self._recent: deque[tuple[int, npt.NDArray[np.int64]]] = deque()
        self._recent_n = 0
        self._recent_counts: npt.NDArray[np.int64] | None = None

    def update(self, values: npt.ArrayLike) -> None:
        """Add a batch of values (e.g. one feature over one list's items)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        v = v[np.isfinite(v)]
        if v.size == 0:
            return
        if self.edges is None:
            self._ref_values.append(v)
            self._ref_n += v.size
            if self._ref_n >= self.reference_size:
                ref = np.concatenate(self._ref_values)
                # inner edges: unique deciles (a constant feature has none: one bin)
                self.edges = np.unique(np.quantile(ref, np.linspace(0, 1, self.bins + 1)[1:-1]))
                self._expected = np.bincount(np.searchsorted(self.edges, ref, side="right"),
                                             minlength=len(self.edges) + 1).astype(np.float64)
                self._ref_values = []
            return
        counts = np.bincount(np.searchsorted(self.edges, v, side="right"),
                             minlength=len(self.edges) + 1)
        self._recent.append((v.size, counts))
        self._recent_n += v.size
        self._recent_counts = counts if self._recent_counts is None else self._recent_counts + counts
        while self._recent and self._recent_n - self._recent[0][0] >= self.window:
            n, c = self._recent.popleft()
            self._recent_n -= n
            self._recent_counts = self._recent_counts - c

    def value(self) -> float:
        """PSI of the recent values against the reference (NaN until both exist)."""
        if self._expected is None or self._recent_counts is None or self._recent_n == 0:
            return math.nan
        return psi(self._expected, self._recent_counts)

    def reset(self) -> None:
        """Take the next values as a new reference."""
        self.__init__(self.reference_size, self.window, self.bins)  # type: ignore[misc]
