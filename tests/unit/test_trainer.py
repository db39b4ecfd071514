"""The trainer applies what it can of a batch: one bad record costs only itself."""

from __future__ import annotations

import numpy as np

from learner.features import RankContext, featurize
from learner.trainer import Trainer
from streams.examples import LabeledList


def _record(i: int, features: dict | None = None, labels: list[float] | None = None) -> LabeledList:
    ids = ["a", "b", "c"]
    if features is None:
        features = featurize(RankContext(f"u-{i}"), ids, bits=12).to_json()
    return LabeledList(f"i-{i}", f"u-{i}", None, None, ids, [1, 2, 3],
                       labels if labels is not None else [0.0, 0.0, 1.0], 1.0, f"t/0/{i}",
                       ts=1000 * i, features=features)


def test_a_record_that_cannot_be_applied_is_skipped_and_the_rest_are_learned() -> None:
    good = [_record(i) for i in range(6)]
    bad = [_record(6, features={"shape": [3, 2], "index": "not base64!", "value": "x"}),
           _record(7, labels=[1.0, 0.0])]  # two labels for three items
    mixed, clean = Trainer(bits=12, dense=False), Trainer(bits=12, dense=False)
    mixed.learn_batch(good[:3] + bad[:1] + good[3:] + bad[1:])
    clean.learn_batch(good)
    assert (mixed.examples, mixed.skipped, clean.skipped) == (6, 2, 0)
    # exactly the update the good records alone give
    for key, value in clean.state().items():
        assert np.array_equal(mixed.state()[key], value), key
