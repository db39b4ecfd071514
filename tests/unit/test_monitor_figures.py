"""The monitor's cheaper per-list work gives bit-equal outputs: the figures of a list
(counted once per score array, the learner's softmax shared with the calibration, the
``served`` figures reused only when they are the learner's very scores), and the stability
indexes fed from column indexes worked out once per block layout. The references below
are the per-figure sums and the per-column loop the monitor used before."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from learner.features import NUMERIC_FEATURES, FeatureBlock
from learner.trainer import Learned
from monitor.online import LearnerMonitor, layout_of
from monitor.psi import StabilityIndex
from monitor.quality import QualityWindow, list_figures
from streams.examples import LabeledList


def _reference_figures(scores: np.ndarray, labels: np.ndarray, positions: Any,
                       probabilities: bool = True) -> dict[str, float]:
    """list_figures as it was: one numpy sum per count, a uniform vector for upstream."""
    c = int(np.argmax(labels))
    n = len(scores)
    pos = np.asarray(positions)
    better = int(np.sum(scores > scores[c]) + np.sum((scores == scores[c]) & (pos < pos[c])))
    rank = better + 1
    below = float(np.sum(scores < scores[c]) + 0.5 * (np.sum(scores == scores[c]) - 1))
    p = np.exp(scores - scores.max())
    p = p / p.sum() if probabilities else np.full(n, 1.0 / n)
    return {"rr": 1.0 / rank, "ndcg": 1.0 / math.log2(rank + 1),
            "auc": below / (n - 1) if n > 1 else math.nan,
            "logloss": float(-math.log(max(float(p[c]), 1e-12)))}


def _reference_row(labels: np.ndarray, positions: Any, scores: dict[str, np.ndarray]
                   ) -> tuple[dict[str, float], np.ndarray]:
    """QualityWindow.on_labeled's row as it was (each ranker scored apart), and the
    learner's probabilities it keeps for the calibration error."""
    if "served" not in scores:
        scores = {**scores, "served": scores["learner"]}
    row = {}
    for name, s in scores.items():
        for k, v in _reference_figures(s, labels, positions, name != "upstream").items():
            row[f"{k}_{name}"] = v
    e = np.exp(scores["learner"] - scores["learner"].max())
    p = e / e.sum()
    top = int(np.argmax(p))
    row["pred_top"], row["obs_top"] = float(p[top]), float(labels[top] > 0)
    return row, p


def _same(a: float, b: float) -> bool:
    """Bit-equal (NaN equals NaN)."""
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def _lists(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(labels, positions, scores) of lists of 2 to 30 items, many with tied scores (the
    scores rounded, or a zero model's), the chosen item anywhere, positions shuffled."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(count):
        n = int(rng.integers(2, 31))
        labels = np.zeros(n)
        labels[rng.integers(n)] = 1.0
        scores = rng.normal(0, 3, n)
        if k % 3 == 0:
            scores = np.round(scores)  # ties
        elif k % 7 == 0:
            scores = np.zeros(n)  # a model that knows nothing yet: all tied
        elif k % 11 == 0:
            scores = scores * 400  # softmax probabilities below the log-loss floor
        out.append((labels, rng.permutation(n) + 1, scores))
    return out


def test_list_figures_are_bit_equal_to_the_per_figure_sums() -> None:
    for labels, positions, scores in _lists(0, 600):
        for probabilities in (True, False):
            got = list_figures(scores, labels, positions, probabilities)
            want = _reference_figures(scores, labels, positions, probabilities)
            assert list(got) == list(want)
            assert all(_same(got[k], want[k]) and type(got[k]) is float for k in want), \
                (got, want)


@pytest.mark.parametrize("served", ["absent", "same array", "equal copy", "other model"])
def test_rows_and_calibration_are_bit_equal_and_served_is_only_reused_when_it_is_the_learners(
        served: str) -> None:
    window = QualityWindow(window=10_000)
    rng = np.random.default_rng(1)
    for labels, positions, learner in _lists(2, 400):
        upstream = positions.astype(np.float64)
        scores = {"learner": learner}
        if served == "same array":
            scores["served"] = learner
        elif served == "equal copy":
            scores["served"] = learner.copy()
        elif served == "other model":
            scores["served"] = learner + rng.normal(0, 1, len(learner))
        scores["upstream"] = upstream
        row = window.on_labeled(labels, positions, scores)
        want, p = _reference_row(labels, positions, scores)
        assert row.keys() == want.keys()
        assert all(_same(row[k], want[k]) for k in want), (served, row, want)
        kept_p, kept_y = window._calib[-1]
        assert kept_p.tobytes() == p.tobytes()
        assert kept_y.tobytes() == (labels > 0).astype(np.float64).tobytes()
        if served == "other model":  # scored apart: the figures are the served model's
            assert _same(row["logloss_served"],
                         _reference_figures(scores["served"], labels, positions)["logloss"])


def test_a_served_array_that_is_not_the_learners_gets_its_own_figures() -> None:
    window = QualityWindow()
    labels, positions = np.array([0.0, 1.0, 0.0]), np.array([1, 2, 3])
    row = window.on_labeled(labels, positions, {"learner": np.array([0.0, 2.0, 1.0]),
                                                "served": np.array([2.0, 0.0, 1.0])})
    assert (row["rr_learner"], row["rr_served"]) == (1.0, 1 / 3)
    assert row["logloss_learner"] < row["logloss_served"]


def test_scores_that_do_not_fit_the_list_raise() -> None:
    window = QualityWindow()
    with pytest.raises(ValueError):  # one score for three items: no broadcast
        window.on_labeled(np.array([1.0, 0.0, 0.0]), np.array([1, 2, 3]),
                          {"learner": np.array([0.5])})
    assert window.labeled == 0


def _block(rng: np.random.Generator, n: int, names: tuple[str, ...]) -> FeatureBlock:
    value = rng.normal(0, 1, (n, len(names))).astype(np.float32)
    return FeatureBlock(np.zeros((n, len(names)), dtype=np.int64), value, names)


def test_stability_indexes_match_the_per_column_loop_with_mixed_layouts() -> None:
    numeric = [name for name in NUMERIC_FEATURES if name != "upstream_rank"][:4]
    # three layouts, interleaved: another column order, a request feature, no upstream rank
    layouts = [("item", *numeric, "upstream_rank"),
               ("upstream_rank", "brand", *numeric[::-1], "request:price"),
               ("item", numeric[0], "request_rank:price")]
    rng = np.random.default_rng(3)
    monitor = LearnerMonitor(None, None, None, None, psi_reference=60)  # type: ignore[arg-type]
    reference: dict[str, StabilityIndex] = {}
    for batch in range(6):
        learned = []
        columns: dict[str, list[np.ndarray]] = {}
        for k in range(12):
            n = int(rng.integers(2, 9))
            names = layouts[(k // (1 + batch % 3)) % 3]
            block = _block(rng, n, names)
            labels = [0.0] * n
            labels[int(rng.integers(n))] = 1.0
            rec = LabeledList(f"imp-{batch}-{k}", "u", None, None, [f"i{j}" for j in range(n)],
                              list(range(1, n + 1)), labels, 1.0, f"t/0/{batch * 12 + k}")
            learned.append(Learned(rec, block, rng.normal(0, 1, n)))
            for j, name in enumerate(names):  # the loop the monitor ran per list before
                if name in NUMERIC_FEATURES or name.startswith("request"):
                    columns.setdefault(name, []).append(block.value[:, j])
        monitor.on_learned(learned)
        for name, parts in columns.items():
            reference.setdefault(name, StabilityIndex(60, 60)).update(np.concatenate(parts))
    assert monitor.feature_psi.keys() == reference.keys()
    for name, want in reference.items():
        got = monitor.feature_psi[name]
        assert want.edges is not None and got.edges is not None
        assert got.edges.tobytes() == want.edges.tobytes(), name
        assert np.array_equal(got._recent_counts, want._recent_counts), name
        assert got._recent_n == want._recent_n and _same(got.value(), want.value()), name
    assert monitor.quality.labeled == 72


def test_a_layout_is_worked_out_once_per_names() -> None:
    names = ("item", "item_ctr", "request:price", "upstream_rank")
    again = names[:2] + names[2:]  # an equal tuple, another object
    assert again is not names and layout_of(again) is layout_of(names)
    assert layout_of(names).psi_index == (1, 2, 3)
