"""Timing helpers: percentiles of samples, rates, slopes, and the progress printer.

Examples
--------
>>> s = summarize([1.0, 2.0, 3.0, 4.0, 100.0])
>>> s["p50"], s["n"], round(s["p99"], 1)
(3.0, 5, 96.2)
>>> round(slope([0, 1, 2, 3], [10, 12, 14, 16]), 6)
2.0
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["ns_to_ms", "say", "slope", "summarize"]

_T0 = time.monotonic()


def say(msg: str) -> None:
    """One progress line on stderr, with the wall-clock time and seconds since start."""
    print(f"[bench {time.strftime('%H:%M:%S')} +{time.monotonic() - _T0:5.0f}s] {msg}",
          file=sys.stderr, flush=True)


def summarize(samples: Sequence[float] | np.ndarray) -> dict[str, float]:
    """n, mean, p50, p90, p95, p99, max of ``samples`` (any unit; linear interpolation)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    p50, p90, p95, p99 = np.percentile(a, [50, 90, 95, 99])
    return {"n": int(a.size), "mean": float(a.mean()), "p50": float(p50), "p90": float(p90),
            "p95": float(p95), "p99": float(p99), "max": float(a.max())}


def ns_to_ms(samples_ns: Sequence[int]) -> np.ndarray:
    """Nanosecond samples as milliseconds."""
    return np.asarray(samples_ns, dtype=np.float64) / 1e6


def slope(t: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``y`` over ``t`` (units of y per unit of t); 0 for < 2 points."""
    ta, ya = np.asarray(t, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if ta.size < 2 or np.ptp(ta) == 0:
        return 0.0
    return float(np.polyfit(ta, ya, 1)[0])
