"""FTRL-Proximal logistic regression over a hashed weight space.

Per-coordinate learning rates and L1/L2 regularisation as in McMahan et al., "Ad Click
Prediction: a View from the Trenches", KDD 2013 (Algorithm 1). The state is two dense
arrays ``z`` and ``n`` over the ``2**bits`` hashed coordinates; the weights derived from
them are kept current for the coordinates each step touches. :meth:`learn_one` is the exact per-example algorithm (the slow path);
:meth:`learn_many` updates from a mini-batch with one vectorized pass, gradients of a
coordinate summed over the batch (the fast path). A batch of one gives the same state as
:meth:`learn_one`; ``learner/test_ftrl.py`` checks it.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> model = FTRLProximal(bits=8, alpha=0.5)
>>> index = np.column_stack([rng.integers(0, 64, 2000),      # an informative column
...                          rng.integers(64, 256, (2000, 2))])  # two noise columns
>>> value = np.ones((2000, 3), dtype=np.float32)
>>> y = (index[:, 0] % 2 == 0).astype(np.float64)   # its parity is the label
>>> for lo in range(0, 2000, 100):
...     _ = model.learn_many(index[lo:lo + 100], value[lo:lo + 100], y[lo:lo + 100])
>>> p = model.predict_many(index, value)
>>> round(float(((p > 0.5) == (y == 1)).mean()), 2)
1.0
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.statedict import StateDict, copy_into

__all__ = ["FTRLProximal", "sigmoid"]

Index = npt.NDArray[np.int64]
Values = npt.NDArray[np.floating]
F64 = npt.NDArray[np.float64]


def sigmoid(x: npt.NDArray[np.floating]) -> F64:
    """Numerically safe logistic function."""
    return 1.0 / (1.0 + np.exp(-np.clip(x, -35.0, 35.0)))


#: ``step`` sums a batch's gradients with one bincount over the whole weight space when
#: the space has at most this many coordinates per gradient entry (else it sorts them).
DENSE_SUM_FACTOR = 8


class FTRLProximal:
    """Hashed FTRL-Proximal logistic regression.

    Parameters
    ----------
    bits
        Log2 of the number of hashed coordinates.
    alpha, beta
        Per-coordinate learning rate ``alpha / (beta + sqrt(n_i))``.
    l1, l2
        Regularisation strengths.
    """

    def __init__(self, bits: int, alpha: float = 0.1, beta: float = 1.0, l1: float = 0.0,
                 l2: float = 1.0) -> None:
        self.bits = bits
        self.alpha = alpha
        self.beta = beta
        self.l1 = l1
        self.l2 = l2
        self.z = np.zeros(1 << bits, dtype=np.float64)
        self.n = np.zeros(1 << bits, dtype=np.float64)
        # the weights, kept current for the coordinates each step touches: reading a
        # block's weights is one gather, and a snapshot one pass over the space
        self._w = np.zeros(1 << bits, dtype=np.float64)

    def weights_at(self, idx: Index) -> F64:
        """Current weights of the coordinates ``idx`` (any shape)."""
        return self._w[idx]

    def _weights_at(self, idx: Index) -> F64:
        z = self.z[idx]
        n = self.n[idx]
        w = -(z - np.sign(z) * self.l1) / ((self.beta + np.sqrt(n)) / self.alpha + self.l2)
        return np.where(np.abs(z) <= self.l1, 0.0, w)

    def weights(self, dtype: type[np.floating] = np.float32) -> npt.NDArray[np.floating]:
        """All ``2**bits`` weights, as served (one dense array, a copy)."""
        return self._w.astype(dtype)

    def _raw_dot_many(self, index: Index, value: Values) -> F64:
        return (self._w[index] * value).sum(axis=1)

    def predict_many(self, index: Index, value: Values) -> F64:
        """Click probability of each row of an ``(n, k)`` feature block."""
        return sigmoid(self._raw_dot_many(index, value))

    def learn_many(self, index: Index, value: Values, y: npt.ArrayLike,
                   sample_weight: npt.ArrayLike | None = None) -> F64:
        """One FTRL step from a mini-batch; returns the predictions made before it."""
        y = np.asarray(y, dtype=np.float64)
        p = self.predict_many(index, value)
        err = p - y
        if sample_weight is not None:
            err = err * np.asarray(sample_weight, dtype=np.float64)
        self.step(index, value, err)
        return p

    def step(self, index: Index, value: Values, row_grad: npt.ArrayLike) -> None:
        """One FTRL step given each row's gradient of the loss with respect to its logit.

        This is how other losses use the same optimizer: the softmax over a list passes
        ``p - y`` of each shown item.
        """
        # (n, k) per-entry gradients, summed per coordinate over the batch
        g_entry = np.asarray(row_grad, dtype=np.float64)[:, None] * value
        flat = np.asarray(index).ravel()
        if self.z.shape[0] <= DENSE_SUM_FACTOR * flat.size:
            # a big batch for the space: one pass of bincount over the whole space is
            # cheaper than sorting the entries (both add in the entries' order, so the
            # sums are the same); coordinates whose gradient sums to 0 would not move
            g_all = np.bincount(flat, weights=g_entry.ravel(), minlength=self.z.shape[0])
            coords = np.flatnonzero(g_all != 0)
            self._step(coords, g_all[coords])
            return
        coords, inverse = np.unique(flat, return_inverse=True)
        g = np.zeros(coords.shape[0], dtype=np.float64)
        np.add.at(g, inverse, g_entry.ravel())
        self._step(coords, g)

    def state(self) -> StateDict:
        """The complete optimizer state (copies): ``z``, ``n`` and the served weights
        (``w32``, which :meth:`load_state` does not need: it derives them from ``z`` and
        ``n``)."""
        return {"z": self.z.copy(), "n": self.n.copy(), "w32": self._w.astype(np.float32)}

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore a :meth:`state` in place; it must come from a model of the same size."""
        for name, arr in (("z", self.z), ("n", self.n)):
            copy_into(arr, state, name)
        self._w[:] = self._weights_at(np.arange(self.z.shape[0]))

    def learn_one(self, index: Index, value: Values, y: float, sample_weight: float = 1.0) -> float:
        """Exact per-example FTRL step for one ``(k,)`` row; returns its prediction before."""
        return float(self.learn_many(index[None, :], value[None, :], [y], [sample_weight])[0])

    def _step(self, coords: Index, g: F64) -> None:
        w = self._w[coords]
        n_old = self.n[coords]
        n_new = n_old + g * g
        sigma = (np.sqrt(n_new) - np.sqrt(n_old)) / self.alpha
        self.z[coords] += g - sigma * w
        self.n[coords] = n_new
        self._w[coords] = self._weights_at(coords)
