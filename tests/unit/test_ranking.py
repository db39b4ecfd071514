"""Re-ranking rules: the upstream order, ties, the model's order, explanations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from learner.features import FEATURE_NAMES, RankContext, featurize
from learner.snapshot import Snapshot
from serving.model import ServingModel
from serving.ranking import rank, softmax, upstream_order
from serving.schemas import RankItem

BITS = 12


def _items(*scores: float | None) -> list[RankItem]:
    return [RankItem(item_id=f"sku-{i}", base_score=s) for i, s in enumerate(scores)]


def _model(weights: dict[int, float] | None = None, version: int = 1) -> ServingModel:
    w = np.zeros(1 << BITS, dtype=np.float32)
    for index, value in (weights or {}).items():
        w[index] += value
    return ServingModel(Snapshot(version=version, created_ms=0, examples=0, arrays={"w": w},
                                 meta={"hash_bits": BITS}))


def _user_item(user: str, item: str) -> int:
    """The weight index of the user x item cross (column 1 of the feature block)."""
    block = featurize(RankContext(user), [item], BITS)
    return int(block.index[0, FEATURE_NAMES.index("user_x_item")])


# -- the upstream order -----------------------------------------------------------------


def test_upstream_order_is_by_base_score_descending() -> None:
    assert upstream_order(_items(1.0, 3.0, 2.0, -1.0)).tolist() == [1, 2, 0, 3]


def test_items_without_base_score_come_after_in_the_order_sent() -> None:
    assert upstream_order(_items(None, 1.0, None, 5.0, None)).tolist() == [3, 1, 0, 2, 4]


def test_without_any_base_score_the_order_is_as_sent() -> None:
    assert upstream_order(_items(None, None, None)).tolist() == [0, 1, 2]


def test_equal_base_scores_keep_the_order_sent() -> None:
    assert upstream_order(_items(2.0, 5.0, 2.0, 5.0, 0.0, -0.0)).tolist() == [1, 3, 0, 2, 4, 5]


@given(st.lists(st.none() | st.floats(allow_nan=False, allow_infinity=False, width=32),
                min_size=1, max_size=40))
def test_upstream_order_matches_a_plain_python_sort(scores: list[float | None]) -> None:
    expected = sorted(range(len(scores)),
                      key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))
    assert upstream_order(_items(*scores)).tolist() == expected


# -- without a model --------------------------------------------------------------------


def test_without_a_model_scores_are_the_base_scores() -> None:
    rows = rank(None, RankContext("u-42"), _items(1.0, None, 2.0), explain=True)
    assert rows == [(2, 2.0, None), (0, 1.0, None), (1, None, None)]


# -- with a model -----------------------------------------------------------------------


def test_a_user_the_model_knows_nothing_about_gets_the_upstream_order() -> None:
    items = _items(1.0, None, 3.0, 2.0, None)
    model = _model({_user_item("u-known", "sku-4"): 5.0})
    rows = rank(model, RankContext("u-new"), items)
    assert [i for i, _, _ in rows] == upstream_order(items).tolist()
    assert [s for _, s, _ in rows] == pytest.approx([1 / len(items)] * len(items))


def test_the_model_moves_the_favoured_item_first_for_its_user_only() -> None:
    items = _items(3.0, 2.0, 1.0)
    model = _model({_user_item("u-42", "sku-2"): 2.0})
    rows = rank(model, RankContext("u-42"), items)
    assert [i for i, _, _ in rows] == [2, 0, 1]
    assert rows[0][1] == pytest.approx(float(softmax(np.array([2.0, 0.0, 0.0]))[0]))
    assert [i for i, _, _ in rank(model, RankContext("u-7"), items)] == [0, 1, 2]


def test_ties_in_the_model_keep_the_upstream_order() -> None:
    # sku-1 and sku-3 get the same lift; among them the higher base_score (sku-3) leads
    items = _items(4.0, 1.0, 2.0, 3.0)
    model = _model({_user_item("u-42", "sku-1"): 1.0, _user_item("u-42", "sku-3"): 1.0})
    assert [i for i, _, _ in rank(model, RankContext("u-42"), items)] == [3, 1, 0, 2]


def test_vectorized_rank_agrees_with_scoring_one_item_at_a_time() -> None:
    rng = np.random.default_rng(7)
    w = rng.normal(size=1 << BITS).astype(np.float32)
    model = ServingModel(Snapshot(version=1, created_ms=0, examples=0, arrays={"w": w},
                                  meta={"hash_bits": BITS}))
    items = _items(*rng.normal(size=50).round(1).tolist())
    ctx = RankContext("u-42", session_id="s-9", query="running shoes")
    # the slow path: the same features, each logit summed in Python, then a sort by
    # (-logit, upstream position)
    up = upstream_order(items).tolist()
    block = model.features(ctx, [items[i].item_id for i in up],
                           base_scores=[items[i].base_score for i in up])
    slow = {}
    for row, i in enumerate(up):
        slow[i] = sum(float(w[block.index[row, j]]) * float(block.value[row, j])
                      for j in range(block.index.shape[1]))
    expected = sorted(range(len(items)), key=lambda i: (-slow[i], up.index(i)))
    rows = rank(model, ctx, items)
    assert [i for i, _, _ in rows] == expected
    shares = softmax(np.array([slow[i] for i in expected]))
    assert [score for _, score, _ in rows] == pytest.approx(shares.tolist(), rel=1e-5)


# -- explanations -----------------------------------------------------------------------


def test_explain_lists_the_three_largest_contributions_by_absolute_value() -> None:
    items = _items(1.0, 2.0)
    ctx = RankContext("u-42", session_id="s-9")
    block = featurize(ctx, ["sku-0"], BITS)
    index = dict(zip(FEATURE_NAMES, block.index[0].tolist()))
    model = _model({index["item"]: 0.1, index["user_x_item"]: -0.8,
                    index["session_x_item"]: 0.3})
    rows = {i: e for i, _, e in rank(model, ctx, items, explain=True)}
    first, second = rows[0], rows[1]
    assert first is not None and second is not None
    assert first == [{"feature": "user_x_item", "contribution": pytest.approx(-0.8)},
                       {"feature": "session_x_item", "contribution": pytest.approx(0.3)},
                       {"feature": "item", "contribution": pytest.approx(0.1)}]
    # sku-1 has none of those coordinates: its contributions are zero (never -0.0)
    assert [math.copysign(1.0, float(e["contribution"])) for e in second] == [1.0] * 3
    assert all(e["contribution"] == 0.0 for e in second)
    assert len(first) == len(second) == 3


def test_explanations_add_up_to_the_logit_of_the_score() -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=1 << BITS).astype(np.float32)
    model = ServingModel(Snapshot(version=1, created_ms=0, examples=0, arrays={"w": w},
                                  meta={"hash_bits": BITS}))
    # asked for every feature, the explanation is the whole logit; scores are its softmax
    rows = rank(model, RankContext("u-1", session_id="s"), _items(None, None, None),
                explain=True, top_k=len(FEATURE_NAMES))
    logits = []
    for _, score, explanation in rows:
        assert explanation is not None and score is not None
        assert {e["feature"] for e in explanation} <= set(FEATURE_NAMES)
        logits.append(sum(float(e["contribution"]) for e in explanation))
        sizes = [abs(float(e["contribution"])) for e in explanation]
        assert sizes == sorted(sizes, reverse=True)
    assert logits == sorted(logits, reverse=True)
    assert [s for _, s, _ in rows] == pytest.approx(softmax(np.array(logits)).tolist(), rel=1e-5)


def test_no_explanation_unless_asked() -> None:
    rows = rank(_model(), RankContext("u"), _items(1.0, 2.0))
    assert all(e is None for _, _, e in rows)
