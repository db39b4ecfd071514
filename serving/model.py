"""The served model: a snapshot's arrays, scored with numpy only (no torch, no faust).

Examples
--------
>>> import numpy as np
>>> from learner.snapshot import Snapshot
>>> from learner.features import RankContext
>>> snap = Snapshot(version=1, created_ms=0, examples=0,
...                 arrays={"w": np.zeros(2**10, dtype=np.float32)}, meta={"hash_bits": 10})
>>> m = ServingModel(snap)
>>> m.logits(m.features(RankContext("u"), ["a", "b"])).tolist()
[0.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.features import FeatureBlock, RankContext, featurize
from learner.scoring import DENSE_TABLES, dense_logits, sparse_logits
from learner.snapshot import Snapshot, SnapshotError
from learner.stats import ItemStats, stats_of

__all__ = ["DENSE_FEATURE", "ServingModel"]

#: Name of the dense part's contribution in explanations.
DENSE_FEATURE = "dense_match"


@lru_cache(maxsize=256)
def _with_dense(names: tuple[str, ...]) -> tuple[str, ...]:
    return (*names, DENSE_FEATURE)


class ServingModel:
    """Scores candidates with the arrays of one snapshot."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.bits = int(snapshot.meta.get("hash_bits", 0))
        w = snapshot.arrays.get("w")
        if w is None or self.bits <= 0 or w.shape != (1 << self.bits,):
            raise SnapshotError("snapshot has no weight vector matching its hash_bits")
        self.w = w
        a = snapshot.arrays
        self.dense = {k: a[k] for k in DENSE_TABLES} if all(k in a for k in DENSE_TABLES) else None
        self.stats: ItemStats | None = stats_of(a, snapshot.meta)

    @property
    def version(self) -> str:
        """The contract's model version string."""
        return self.snapshot.model_version

    def features(self, ctx: RankContext, item_ids: Sequence[str], **inputs: Any) -> FeatureBlock:
        """The shared feature block for these candidates (see :func:`featurize`)."""
        return featurize(ctx, item_ids, self.bits, stats=self.stats, **inputs)

    def contributions(self, block: FeatureBlock) -> tuple[npt.NDArray[np.float64], tuple[str, ...]]:
        """``(n, k)`` per-feature contributions to each logit, and their names."""
        weights = self.w.take(block.index)
        if self.dense is None or block.dense is None:
            return np.multiply(weights, block.value, dtype=np.float32).astype(np.float64), \
                block.names
        n, k = weights.shape
        out = np.empty((n, k + 1))
        # the float32 products, widened as they are stored: no (n, k) temporary
        np.multiply(weights, block.value, out=out[:, :k], dtype=np.float32, casting="unsafe")
        out[:, k] = dense_logits(self.dense, block.dense)
        return out, _with_dense(block.names)

    def logits(self, block: FeatureBlock) -> npt.NDArray[np.float64]:
        """Relevance logit ``S`` of each candidate: one gather, one row sum, one matvec."""
        s = sparse_logits(self.w, block)
        if self.dense is not None and block.dense is not None:
            s = s + dense_logits(self.dense, block.dense)
        return s

    def rank_order(self, ctx: RankContext, item_ids: Sequence[str], **inputs: Any
                   ) -> npt.NDArray[np.int64]:
        """Indices of ``item_ids`` best first; ties keep the order given (stable)."""
        return np.argsort(-self.logits(self.features(ctx, item_ids, **inputs)), kind="stable")
