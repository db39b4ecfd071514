"""The online learner: labelled lists in, weights updated, snapshots out.

Each :class:`~streams.examples.LabeledList` is turned into features by the shared
:func:`~learner.features.featurize` (the scorer calls the same function) and applied to
the FTRL-Proximal model as one mini-batch, one row per shown item.

Examples
--------
>>> from streams.examples import LabeledList
>>> t = Trainer(bits=12)
>>> ex = LabeledList(impression_id="i", user_id="u", session_id=None, query=None,
...                  item_ids=["a", "b", "c"], positions=[1, 2, 3], labels=[0, 0, 1],
...                  weight=1.0, source="x/0/1")
>>> for _ in range(20):
...     t.learn_list(ex)
>>> snap = t.snapshot(version=1, now_ms=0)
>>> from serving.model import ServingModel
>>> from learner.features import RankContext
>>> ServingModel(snap).rank_order(RankContext("u"), ["a", "b", "c"]).tolist()
[2, 0, 1]
>>> t.examples
20
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from learner.features import FEATURE_NAMES, RankContext, featurize
from learner.ftrl import FTRLProximal
from learner.snapshot import Snapshot
from streams.examples import LabeledList

__all__ = ["Trainer"]


class Trainer:
    """Owns the model state and applies labelled lists to it.

    Parameters
    ----------
    bits
        Log2 of the hashed weight space.
    alpha, beta, l1, l2
        FTRL-Proximal hyper-parameters.
    """

    def __init__(self, bits: int = 20, alpha: float = 0.1, beta: float = 1.0, l1: float = 0.0,
                 l2: float = 1.0) -> None:
        self.bits = bits
        self.model = FTRLProximal(bits=bits, alpha=alpha, beta=beta, l1=l1, l2=l2)
        #: Labelled lists applied so far.
        self.examples = 0
        #: Updates since the last snapshot was taken.
        self.dirty = 0
        self.last_update_ms: int | None = None

    def learn_list(self, ex: LabeledList) -> None:
        """Apply one labelled list: one FTRL mini-batch over its shown items."""
        ctx = RankContext(user_id=ex.user_id, session_id=ex.session_id, query=ex.query)
        block = featurize(ctx, ex.item_ids, self.bits)
        weight = np.full(len(ex.item_ids), ex.weight, dtype=np.float64)
        self.model.learn_many(block.index, block.value, np.asarray(ex.labels, dtype=np.float64),
                              weight)
        self.examples += 1
        self.dirty += 1
        self.last_update_ms = int(time.time() * 1000)

    def snapshot(self, version: int, now_ms: int | None = None) -> Snapshot:
        """The served parameters as a snapshot; resets the dirty counter."""
        meta: dict[str, Any] = {"hash_bits": self.bits, "features": list(FEATURE_NAMES),
                                "model": "ftrl-logistic"}
        self.dirty = 0
        return Snapshot(version=version,
                        created_ms=now_ms if now_ms is not None else int(time.time() * 1000),
                        examples=self.examples, arrays={"w": self.model.weights()}, meta=meta)
