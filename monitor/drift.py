"""Drift signals: change detectors on the loss stream, and how far the weights move.

:class:`LossDrift` feeds every labelled list's log-loss (progressive validation, see
:mod:`monitor.quality`) to two of River's detectors: ADWIN (Bifet and Gavaldà, "Learning
from time-changing data with adaptive windowing", SDM 2007), which keeps a window whose
two halves have the same mean and cuts it when they stop to (counted here only when the
mean rose), and Page-Hinkley (Page,
"Continuous inspection schemes", Biometrika 1954), a cumulative test for a rise of the
mean. Each counts its detections and remembers the list at which it last fired.

:class:`WeightMovement` compares each published snapshot with the one before: the norms
of the sparse weights and the embedding tables, and the relative size of the update
``||w_t - w_(t-1)|| / ||w_(t-1)||``.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> d = LossDrift()
>>> for x in rng.normal(1.0, 0.3, 2000):
...     _ = d.update(float(x))
>>> d.detections
{'adwin': 0, 'page_hinkley': 0}
>>> for x in rng.normal(2.0, 0.3, 300):   # the loss doubles
...     _ = d.update(float(x))
>>> d.detections["adwin"] >= 1, d.detections["page_hinkley"] >= 1
(True, True)
>>> 2000 < d.last_detection["adwin"] < 2100
True
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from river import drift

from monitor.series import DETECTORS

__all__ = ["DETECTORS", "LossDrift", "WeightMovement"]



class LossDrift:
    """ADWIN and Page-Hinkley (upward) on a stream of losses.

    Parameters
    ----------
    adwin_delta
        ADWIN's confidence (smaller: fewer false alarms, later detections).
    ph_threshold, ph_delta
        Page-Hinkley's threshold on the cumulative deviation and the tolerated change.
    """

    def __init__(self, adwin_delta: float = 0.002, ph_threshold: float = 50.0,
                 ph_delta: float = 0.005) -> None:
        self.options = {"adwin_delta": adwin_delta, "ph_threshold": ph_threshold,
                        "ph_delta": ph_delta}
        self._adwin = drift.ADWIN(delta=adwin_delta)
        self._ph = drift.PageHinkley(threshold=ph_threshold, delta=ph_delta, mode="up")
        #: Values seen.
        self.n = 0
        self.detections = {name: 0 for name in DETECTORS}
        #: Index (1-based) of the value at which each detector last fired.
        self.last_detection: dict[str, int | None] = {name: None for name in DETECTORS}

    def update(self, loss: float) -> list[str]:
        """Add one loss; the detectors that fired on it."""
        if not math.isfinite(loss):
            return []
        self.n += 1
        fired = []
        before = self.adwin_mean()
        for name, det in (("adwin", self._adwin), ("page_hinkley", self._ph)):
            det.update(loss)
            # ADWIN cuts its window at any change; only a rise of the loss is drift here
            # (a learning model's loss falls, and that is no alarm)
            if det.drift_detected and not (name == "adwin" and self.adwin_mean() <= before):
                fired.append(name)
                self.detections[name] += 1
                self.last_detection[name] = self.n
        return fired

    def adwin_mean(self) -> float:
        """Mean loss of ADWIN's current window (the loss since the last change)."""
        return float(self._adwin.estimation) if self._adwin.width else math.nan

    def reset(self) -> None:
        """Start both detectors afresh (counts are kept)."""
        self._adwin = drift.ADWIN(delta=self.options["adwin_delta"])
        self._ph = drift.PageHinkley(threshold=self.options["ph_threshold"],
                                     delta=self.options["ph_delta"], mode="up")


class WeightMovement:
    """Norms of a snapshot's weights and the relative size of the last update."""

    def __init__(self) -> None:
        self._prev: npt.NDArray[np.float32] | None = None
        self.version: int | None = None
        self.figures: dict[str, float] = {"weight_norm": math.nan, "dense_norm": math.nan,
                                          "update_size": math.nan}

    def on_snapshot(self, version: int, arrays: dict[str, Any]) -> dict[str, float]:
        """Take a published snapshot's arrays (once per version); the figures."""
        if version == self.version:
            return self.figures
        w = np.asarray(arrays["w"], dtype=np.float32)
        norm = float(np.linalg.norm(w))
        dense = [np.asarray(a) for k, a in arrays.items() if k.startswith("dense_")]
        dense_norm = float(math.sqrt(sum(float(np.sum(np.square(a, dtype=np.float64)))
                                         for a in dense))) if dense else math.nan
        update = math.nan
        if self._prev is not None and self._prev.shape == w.shape:
            prev_norm = float(np.linalg.norm(self._prev))
            update = float(np.linalg.norm(w - self._prev)) / max(prev_norm, 1e-12)
        self._prev = w.copy()
        self.version = version
        self.figures = {"weight_norm": norm, "dense_norm": dense_norm, "update_size": update}
        return self.figures
