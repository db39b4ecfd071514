"""The served model: a snapshot's weights, scored with numpy only (no torch, no faust).

Examples
--------
>>> import numpy as np
>>> from learner.snapshot import Snapshot
>>> from learner.features import RankContext
>>> snap = Snapshot(version=1, created_ms=0, examples=0,
...                 arrays={"w": np.zeros(2**10, dtype=np.float32)}, meta={"hash_bits": 10})
>>> m = ServingModel(snap)
>>> m.predict_many(RankContext("u"), ["a", "b"]).tolist()
[0.5, 0.5]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from learner.features import FeatureBlock, RankContext, featurize
from learner.snapshot import Snapshot, SnapshotError

__all__ = ["ServingModel"]


class ServingModel:
    """Scores candidates with the weights of one snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.bits = int(snapshot.meta.get("hash_bits", 0))
        w = snapshot.arrays.get("w")
        if w is None or self.bits <= 0 or w.shape != (1 << self.bits,):
            raise SnapshotError("snapshot has no weight vector matching its hash_bits")
        self.w = w

    @property
    def version(self) -> str:
        """The contract's model version string."""
        return self.snapshot.model_version

    def features(self, ctx: RankContext, item_ids: Sequence[str]) -> FeatureBlock:
        """The shared feature block for these candidates."""
        return featurize(ctx, item_ids, self.bits)

    def contributions(self, block: FeatureBlock) -> npt.NDArray[np.float64]:
        """``(n, k)`` per-feature contributions to each candidate's logit."""
        return (self.w[block.index] * block.value).astype(np.float64)

    def logits(self, block: FeatureBlock) -> npt.NDArray[np.float64]:
        """One gather and one row sum over all candidates."""
        return self.contributions(block).sum(axis=1)

    def predict_many(self, ctx: RankContext, item_ids: Sequence[str]) -> npt.NDArray[np.float64]:
        """Click probability of each candidate."""
        z = self.logits(self.features(ctx, item_ids))
        return 1.0 / (1.0 + np.exp(-np.clip(z, -35.0, 35.0)))

    def rank_order(self, ctx: RankContext, item_ids: Sequence[str]) -> npt.NDArray[np.int64]:
        """Indices of ``item_ids`` best first; ties keep the order given (stable)."""
        z = self.logits(self.features(ctx, item_ids))
        return np.argsort(-z, kind="stable")
