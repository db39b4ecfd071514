"""Item vectors (the contract's ``embedding``): state taste, features, and learning batches
whose lists have different numbers of columns."""

from __future__ import annotations

import numpy as np

from learner.features import RankContext
from learner.items import VECTOR_DIM, item_vector
from learner.trainer import Trainer
from streams.examples import LabeledList
from streams.pipeline import Pipeline
from streams.schemas import InteractionEvent, ItemEvent

BITS = 14


def _pipeline() -> Pipeline:
    p = Pipeline.in_memory(bits=BITS)
    items = {"north-1": [1.0, 0.1, 0.0], "north-2": [0.9, -0.1, 0.1], "north-new": [1.0, 0.0, 0.05],
             "south-new": [-1.0, 0.0, -0.05], "plain": None}
    for item_id, vector in items.items():
        ev = {"item_id": item_id, "category": "tents", "brand": "acme", "price": 100.0}
        if vector is not None:
            ev["embedding"] = vector
        p.on_item(ItemEvent.model_validate(ev), ts=0)
    return p


def _column(block, name: str) -> np.ndarray:
    return block.value[:, block.names.index(name)].astype(np.float64)


def test_clicks_give_the_user_a_taste_that_scores_unseen_items_by_likeness() -> None:
    p = _pipeline()
    for n, item in enumerate(["north-1", "north-2"]):
        p.on_interaction(InteractionEvent.model_validate(
            {"type": "click", "user_id": "u", "session_id": "s", "item_id": item,
             "ts": 1000 + n}), ts=1000 + n, source=f"t/0/{n}")
    ids = ["north-new", "south-new", "plain"]
    block = p.features(RankContext("u", "s", "tents"), ids)
    taste = _column(block, "user_taste_match")
    assert taste[0] > 0.5 > 0 > -0.5 > taste[1]  # like the clicked ones / opposite
    assert taste[2] == 0.0                       # no vector, no taste signal
    assert _column(block, "session_taste_match")[0] > 0
    vector_cols = [n for n in block.names if n.startswith("user_x_vector:")]
    assert len(vector_cols) == 3
    assert np.allclose(_column(block, "user_x_vector:0")[:2], [item_vector([1.0, 0.0, 0.05])[0],
                                                               item_vector([-1.0, 0.0, -0.05])[0]])
    # a user without history gets no taste, and candidates without vectors no vector columns
    fresh = p.features(RankContext("v"), ids)
    assert not _column(fresh, "user_taste_match").any()
    plain = p.features(RankContext("u"), ["plain"])
    assert not any(n.startswith("user_x_vector:") for n in plain.names)


def test_long_embeddings_are_projected_the_same_way_in_every_process() -> None:
    v = item_vector(list(np.linspace(-1.0, 1.0, 300)))
    assert v is not None and len(v) == VECTOR_DIM
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-9
    assert v == item_vector(list(np.linspace(-1.0, 1.0, 300)))
    assert item_vector([float("nan"), 1.0]) is None


def test_a_batch_may_mix_lists_with_and_without_vector_and_request_columns() -> None:
    p = _pipeline()
    blocks = [p.features(RankContext("u"), ["north-1", "south-new"]),       # with vectors
              p.features(RankContext("u"), ["plain", "plain"]),             # none
              p.features(RankContext("u"), ["plain", "north-2"],
                         request_features=[{"price": 90.0}, {"price": 80.0}])]  # request cols
    assert len({b.index.shape[1] for b in blocks}) == 3
    records = [LabeledList(impression_id=f"i{n}", user_id="u", session_id=None, query=None,
                           item_ids=["a", "b"], positions=[1, 2], labels=[0.0, 1.0], weight=1.0,
                           source=f"t/0/{n}", features=b.to_json())
               for n, b in enumerate(blocks)]
    trainer = Trainer(bits=BITS, dense=False)
    before = trainer.model.ftrl.weights_at(blocks[0].index).copy()
    trainer.learn_batch(records)
    assert trainer.examples == 3
    assert not np.array_equal(trainer.model.ftrl.weights_at(blocks[0].index), before)
