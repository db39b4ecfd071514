"""FTRL-Proximal: the fast (batch) path agrees with the slow (per-example) path."""

from __future__ import annotations

import numpy as np
import pytest

from learner.ftrl import FTRLProximal


def _data(n: int = 300, k: int = 4, bits: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    index = rng.integers(0, 1 << bits, size=(n, k))
    value = rng.normal(size=(n, k)).astype(np.float32)
    y = rng.integers(0, 2, size=n).astype(np.float64)
    return index, value, y


@pytest.mark.parametrize("l1", [0.0, 0.5])
def test_batches_of_one_equal_learn_one(l1: float) -> None:
    index, value, y = _data()
    slow = FTRLProximal(bits=10, alpha=0.3, l1=l1)
    fast = FTRLProximal(bits=10, alpha=0.3, l1=l1)
    for i in range(len(y)):
        slow.learn_one(index[i], value[i], float(y[i]))
        fast.learn_many(index[i : i + 1], value[i : i + 1], y[i : i + 1])
    np.testing.assert_array_equal(slow.z, fast.z)
    np.testing.assert_array_equal(slow.n, fast.n)


def test_learn_one_matches_the_paper_for_one_coordinate() -> None:
    # One feature, value 1, label 1: g = p - y = -0.5 from w = 0.
    m = FTRLProximal(bits=4, alpha=0.1, beta=1.0, l1=0.0, l2=0.0)
    m.learn_one(np.array([3]), np.array([1.0], dtype=np.float32), 1.0)
    assert m.n[3] == pytest.approx(0.25)
    assert m.z[3] == pytest.approx(-0.5)  # sigma * w = 0 since w was 0
    # w = -z / ((beta + sqrt(n)) / alpha) = 0.5 / 15
    assert m.weights(np.float64)[3] == pytest.approx(0.5 / 15)


def test_duplicate_coordinates_in_a_batch_sum_their_gradients() -> None:
    m = FTRLProximal(bits=4, alpha=0.1, l2=0.0)
    index = np.array([[1, 1], [1, 2]])
    value = np.ones((2, 2), dtype=np.float32)
    m.learn_many(index, value, np.array([1.0, 1.0]))
    # coordinate 1 appears three times with g = -0.5 each
    assert m.n[1] == pytest.approx(1.5**2)
    assert m.n[2] == pytest.approx(0.25)


def test_l1_keeps_rare_coordinates_at_zero() -> None:
    m = FTRLProximal(bits=4, alpha=0.1, l1=5.0)
    m.learn_one(np.array([2]), np.array([1.0], dtype=np.float32), 1.0)
    assert m.weights()[2] == 0.0


def test_learning_reduces_log_loss() -> None:
    rng = np.random.default_rng(1)
    index = rng.integers(0, 64, size=(4000, 2))
    value = np.ones((4000, 2), dtype=np.float32)
    y = (index[:, 0] < 32).astype(np.float64)
    m = FTRLProximal(bits=6, alpha=0.5)

    def loss() -> float:
        p = np.clip(m.predict_many(index, value), 1e-9, 1 - 1e-9)
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())

    before = loss()
    for lo in range(0, 4000, 200):
        m.learn_many(index[lo : lo + 200], value[lo : lo + 200], y[lo : lo + 200])
    assert loss() < 0.65 * before  # column 1 is noise sharing the space
