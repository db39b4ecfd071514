"""Labelled lists: what the join hands the learner.

One :class:`LabeledList` is a served list together with the outcome that one
interaction gave it: the interacted item is labelled 1 (with a weight by interaction
type), every other shown item 0. It travels as JSON on the internal ``examples`` topic.

>>> ex = LabeledList(impression_id="i", user_id="u", session_id=None, query="q",
...                  item_ids=["a", "b"], positions=[1, 2], labels=[0.0, 1.0],
...                  weight=1.0, source="t/0/7")
>>> LabeledList.from_json(ex.to_json()) == ex
True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

__all__ = ["INTERACTION_WEIGHTS", "LabeledList"]

#: How much one interaction of each type counts in training (views are not list outcomes).
INTERACTION_WEIGHTS: dict[str, float] = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


@dataclass(frozen=True)
class LabeledList:
    """A served list with one interaction's labels."""

    impression_id: str
    user_id: str
    session_id: str | None
    query: str | None
    item_ids: list[str]
    positions: list[int]
    labels: list[float]
    weight: float
    #: Where the interaction came from, ``topic/partition/offset``: a stable identity.
    source: str
    ts: int | None = None

    def to_json(self) -> bytes:
        """Encode for the examples topic."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> LabeledList:
        """Decode from the examples topic."""
        data: dict[str, Any] = orjson.loads(raw)
        return cls(**data)
