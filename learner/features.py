"""The one feature implementation that training and serving share.

Both the learner (when it turns a joined impression into an example) and the scorer
(when it ranks a request) call :func:`featurize`, so the two cannot disagree. A list of
``n`` candidates becomes a :class:`FeatureBlock`: an ``(n, k)`` matrix of hashed weight
indices and an ``(n, k)`` matrix of values, one column per feature template in
:data:`FEATURE_NAMES`. Scoring is then one gather and one row sum.

The first model's templates are hashed crosses of who is asking with what is shown:
user x item, query x item and session x item, plus a bias. A template whose input is
missing (no session, no query) has value 0 and so contributes nothing.

Examples
--------
>>> ctx = RankContext(user_id="u-42", session_id=None, query="Running  Shoes")
>>> block = featurize(ctx, ["sku-1", "sku-2"], bits=18)
>>> block.index.shape, block.value[0].tolist()
((2, 4), [1.0, 1.0, 1.0, 0.0])
>>> normalize_query(" Running  Shoes ")
'running shoes'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from learner.hashing import cross, hash_token, hash_tokens, to_index

__all__ = ["FEATURE_NAMES", "FeatureBlock", "RankContext", "featurize", "normalize_query"]

FEATURE_NAMES: tuple[str, ...] = ("bias", "user_x_item", "query_x_item", "session_x_item")


@dataclass(frozen=True)
class RankContext:
    """Who is asking, and for what: the request-side inputs of the features."""

    user_id: str
    session_id: str | None = None
    query: str | None = None


@dataclass(frozen=True)
class FeatureBlock:
    """Hashed features of ``n`` candidates: ``index`` and ``value`` are both ``(n, k)``."""

    index: npt.NDArray[np.int64]
    value: npt.NDArray[np.float32]

    @property
    def names(self) -> tuple[str, ...]:
        """The feature template of each column."""
        return FEATURE_NAMES

    def __len__(self) -> int:
        return int(self.index.shape[0])


def normalize_query(query: str) -> str:
    """Lower-case and collapse whitespace, so equal queries hash equal."""
    return " ".join(query.lower().split())


def featurize(ctx: RankContext, item_ids: Sequence[str], bits: int) -> FeatureBlock:
    """Features of each candidate in ``item_ids`` for the request ``ctx``."""
    n = len(item_ids)
    items = hash_tokens(f"item={i}" for i in item_ids)  # (n,) uint64
    sides = (
        ("bias", "bias"),
        ("user", ctx.user_id),
        ("query", normalize_query(ctx.query) if ctx.query else None),
        ("session", ctx.session_id),
    )
    index = np.empty((n, len(sides)), dtype=np.int64)
    value = np.ones((n, len(sides)), dtype=np.float32)
    for col, (field, token) in enumerate(sides):
        if token is None:
            index[:, col] = 0
            value[:, col] = 0.0
            continue
        side = np.full(n, hash_token(f"{field}={token}"), dtype=np.uint64)
        # the bias column is the same coordinate for every item; the others cross with it
        h = side if field == "bias" else cross(side, items)
        index[:, col] = to_index(h, bits)
    return FeatureBlock(index=index, value=value)
