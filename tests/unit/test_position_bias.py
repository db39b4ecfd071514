"""Position-bias correction: a worse item always shown first does not fool the model.

Simulated log: for the query "dress", the worse item ``W`` is always shown at position 1
and the better item ``B`` always at position 5; the other eight rotate through the
remaining positions. Other queries show other items in random orders (so every position
is seen with many items, as in a real shop). Users examine position ``p`` with
probability ``1 / p`` and click an examined item with its relevance. ``W`` gets more
clicks than ``B`` (0.35 x 1 > 0.7 x 1/5), so a model that takes clicks at face value
ranks ``W`` first; the examination model learns ``e(p)`` from all the traffic and ranks
``B`` first.
"""

from __future__ import annotations

import numpy as np

from learner.features import RankContext, featurize
from learner.model import ListExample, RankingModel

ITEMS = [f"sku-{i}" for i in range(10)]
WORSE, BETTER = 0, 1
RELEVANCE = np.array([0.35, 0.7, 0.2, 0.3, 0.4, 0.5, 0.25, 0.45, 0.55, 0.15])


def _log(n_lists: int, seed: int = 0) -> list[tuple[bool, ListExample]]:
    """``(is the dress query, example)`` for each click."""
    rng = np.random.default_rng(seed)
    # no user features: "query_x_item" and "item" carry each item's learned relevance
    dress = featurize(RankContext("anyone", query="dress"), ITEMS, bits=16)
    other_items = [f"other-{i}" for i in range(10)]
    other_relevance = rng.uniform(0.1, 0.7, size=10)
    examples = []
    for n in range(n_lists):
        if n % 2:  # the "dress" query: W first, B fifth, the rest rotating
            rest = rng.permutation([i for i in range(10) if i not in (WORSE, BETTER)])
            order = np.array([WORSE, *rest[:3], BETTER, *rest[3:]])  # item at each position
            block, relevance = dress, RELEVANCE
        else:      # another query: its items in a random order
            order = rng.permutation(10)
            query = f"query-{rng.integers(5)}"
            block = featurize(RankContext("anyone", query=query), other_items, bits=16)
            relevance = other_relevance
        positions = np.empty(10, dtype=np.int64)
        positions[order] = np.arange(1, 11)
        clicked = rng.random(10) < relevance / positions        # examination x relevance
        for i in np.flatnonzero(clicked):
            labels = np.zeros(10)
            labels[i] = 1.0
            examples.append((bool(n % 2), ListExample(block, positions=positions,
                                                      labels=labels)))
    return examples


def _train(position_bias: bool) -> RankingModel:
    model = RankingModel(bits=16, dense=False, position_bias=position_bias, alpha=0.05)
    log = [ex for _, ex in _log(8000)]
    for lo in range(0, len(log), 32):
        model.learn(log[lo : lo + 32])
    return model


def _ranks_better_first(model: RankingModel) -> bool:
    s = model.logits(featurize(RankContext("anyone", query="dress"), ITEMS, bits=16))
    return bool(s[BETTER] > s[WORSE])


def test_the_clicks_favour_the_worse_item() -> None:
    clicks = np.sum([ex.labels for dress, ex in _log(8000) if dress], axis=0)
    assert clicks[WORSE] > 1.5 * clicks[BETTER]


def test_with_the_examination_model_the_better_item_ranks_higher() -> None:
    model = _train(position_bias=True)
    assert _ranks_better_first(model)
    # and the examination weights it learned fall with the position, as they should
    e = np.exp(model.log_examination[:10])
    assert e[0] == 1.0 and np.all(np.diff(e[:5]) < 0), e.round(2)


def test_without_the_correction_the_worse_item_ranks_higher() -> None:
    assert not _ranks_better_first(_train(position_bias=False))
