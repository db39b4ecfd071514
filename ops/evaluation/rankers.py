"""The models a replay compares, behind one small interface.

Every ranker sees the same :class:`~learner.features.FeatureBlock` of each served list
(computed once, by the worker's own pipeline, when the list was served) and the same
training records, in the same order. :meth:`Ranker.score_many` returns the scores that
order the list and the list-choice probabilities; :meth:`Ranker.learn_many` applies a
batch of records (``shown`` and ``labeled`` :class:`~streams.examples.LabeledList`).

* ``upstream``: the order as served by the logging policy (the block's ``upstream_rank``
  column: the base-score order, else the order as sent).
* ``popularity``: decayed engagement counts per item, learned online; ties in upstream
  order.
* ``full``, ``no-position-bias``, ``sparse-only``: our :class:`~learner.trainer.Trainer`
  with dense embeddings and position bias, without the position model, without the dense
  part.
* ``river``, ``vw``: pointwise logistic baselines (:mod:`ops.evaluation.pointwise`).

Examples
--------
>>> import numpy as np
>>> from learner.features import RankContext, featurize
>>> block = featurize(RankContext("u"), ["a", "b", "c"], bits=12, base_scores=[3.0, 2.0, 1.0])
>>> scores, probs = UpstreamRanker().score_many(["a", "b", "c"], block)
>>> from ops.evaluation.metrics import model_order
>>> model_order(scores).tolist(), probs.round(3).tolist()
([0, 1, 2], [0.545, 0.273, 0.182])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from learner.features import FeatureBlock
from learner.model import segment_softmax
from learner.trainer import Trainer
from ops.evaluation.metrics import model_order
from streams.examples import LabeledList

__all__ = [
    "MODELS",
    "OracleRanker",
    "PopularityRanker",
    "Ranker",
    "TrainerRanker",
    "UpstreamRanker",
    "make_ranker",
    "softmax",
]

F64 = npt.NDArray[np.float64]


def softmax(s: npt.ArrayLike) -> F64:
    """The list-choice probabilities of logits ``s``."""
    t = np.asarray(s, dtype=np.float64)
    return segment_softmax(t, np.array([0], dtype=np.int64))


class Ranker(Protocol):
    """What a replay needs of a model."""

    name: str

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """``(scores, probs)`` of a list's candidates: scores order them (higher first,
        ties in served order), probs are the list-choice probabilities (sum 1)."""

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """Apply a batch of records; ``blocks[i]`` is the decoded features of
        ``records[i]`` (``None`` for ``shown`` records, which carry none)."""


def _column(block: FeatureBlock, name: str) -> F64:
    return block.value[:, block.names.index(name)].astype(np.float64)


class UpstreamRanker:
    """The logged order; choice probabilities ``1 / rank`` normalised (a position prior)."""

    name = "upstream"

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """The ``upstream_rank`` column (1 for the first, falling as 1 / log2(rank + 1))."""
        scores = _column(block, "upstream_rank")
        rank = np.empty(len(block))
        rank[model_order(scores)] = np.arange(1, len(block) + 1)
        p = 1.0 / rank
        return scores, p / p.sum()

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """Nothing to learn."""


class PopularityRanker:
    """Global popularity: engagement weight per item (click 1, cart 2, purchase 3),
    halved every ``half_life_ms`` of event time; ties in upstream order.

    Parameters
    ----------
    half_life_ms
        Decay of the counts.
    prior
        Pseudo-count of every item in the choice probabilities ``(c_i + prior) / sum``.
    """

    name = "popularity"

    def __init__(self, half_life_ms: float = 6 * 3600 * 1000, prior: float = 0.1) -> None:
        self.half_life_ms = half_life_ms
        self.prior = prior
        #: item_id -> (count, ts of the count)
        self.counts: dict[str, tuple[float, int]] = {}
        self.now = 0

    def _count(self, item_id: str) -> float:
        c, ts = self.counts.get(item_id, (0.0, self.now))
        return c * 0.5 ** ((self.now - ts) / self.half_life_ms)

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """Minus the rank by decayed count, then by the upstream order."""
        counts = np.array([self._count(i) for i in item_ids])
        order = np.lexsort((-_column(block, "upstream_rank"), -counts))
        scores = np.empty(counts.size)
        scores[order] = -np.arange(counts.size, dtype=np.float64)
        p = counts + self.prior
        return scores, p / p.sum()

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """Add each labelled record's weight to its engaged item."""
        for rec in records:
            if rec.ts is not None:
                self.now = max(self.now, rec.ts)
            if rec.kind != "labeled":
                continue
            for item_id, label in zip(rec.item_ids, rec.labels):
                if label > 0:
                    self.counts[item_id] = (self._count(item_id) + rec.weight * label, self.now)


class TrainerRanker:
    """Our model: the worker's :class:`~learner.trainer.Trainer`, fed the same batches."""

    def __init__(self, name: str, trainer: Trainer) -> None:
        self.name = name
        self.trainer = trainer

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """Relevance logits ``S`` (what the scorer ranks by) and ``softmax(S)``."""
        s = np.asarray(self.trainer.model.logits(block), dtype=np.float64)
        return s, softmax(s)

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """One ``Trainer.learn_batch`` call, as the worker's learn agent makes."""
        self.trainer.learn_batch(records)


#: Model names the replay knows, in the order tables list them.
MODELS: tuple[str, ...] = ("full", "no-position-bias", "sparse-only", "upstream", "popularity",
                           "river", "vw", "oracle")


class OracleRanker:
    """Orders a list by its true relevance, where the log knows it (a simulated log): the
    reference every metric's best achievable value is read against. Learns nothing.

    >>> scores, probs = OracleRanker().score_truth(np.array([0.1, 0.3]), 2)
    >>> model_order(scores).tolist(), probs.round(2).tolist()
    ([1, 0], [0.25, 0.75])
    >>> OracleRanker().score_truth(None, 2)[0].tolist()   # no truth: the served order
    [0.0, 0.0]
    """

    name = "oracle"

    def score_truth(self, relevance: F64 | None, n: int) -> tuple[F64, F64]:
        """``(scores, probs)`` from the list's true relevance (``None``: all equal)."""
        if relevance is None:
            return np.zeros(n), np.full(n, 1.0 / n)
        rel = np.asarray(relevance, dtype=np.float64)
        total = rel.sum()
        return rel.copy(), rel / total if total > 0 else np.full(n, 1.0 / n)

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """Without the truth: every item equal (the served order)."""
        return self.score_truth(None, len(item_ids))

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """Nothing to learn."""


def make_ranker(name: str, bits: int = 20) -> Ranker:
    """A fresh ranker by name (see :data:`MODELS`)."""
    if name == "full":
        return TrainerRanker(name, Trainer(bits=bits, position_bias=True, dense=True))
    if name == "no-position-bias":
        return TrainerRanker(name, Trainer(bits=bits, position_bias=False, dense=True))
    if name == "sparse-only":
        return TrainerRanker(name, Trainer(bits=bits, position_bias=True, dense=False))
    if name == "upstream":
        return UpstreamRanker()
    if name == "oracle":
        return OracleRanker()
    if name == "popularity":
        return PopularityRanker()
    if name == "river":
        from ops.evaluation.pointwise import RiverRanker

        return RiverRanker()
    if name == "vw":
        from ops.evaluation.pointwise import VWRanker

        return VWRanker(bits=bits)
    raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODELS)}")
