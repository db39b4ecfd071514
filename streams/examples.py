"""Training records: what the join hands the learner.

A :class:`LabeledList` is a served list with the features it was ranked by (computed
when the impression was processed, so later events cannot leak into them) and, for
``kind="labeled"``, the outcome of one interaction: the interacted item labelled 1, with
a weight by interaction type, every other shown item 0. A ``kind="shown"`` record says
only that the list was shown: the learner counts it for the items' click-through rates.
Records travel as JSON on the internal ``examples`` topic.

>>> ex = LabeledList(impression_id="i", user_id="u", session_id=None, query="q",
...                  item_ids=["a", "b"], positions=[1, 2], labels=[0.0, 1.0],
...                  weight=1.0, source="t/0/7")
>>> LabeledList.from_json(ex.to_json()) == ex
True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["INTERACTION_WEIGHTS", "LabeledList"]

#: How much one interaction of each type counts in training (views are not list outcomes).
INTERACTION_WEIGHTS: dict[str, float] = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}


@dataclass(frozen=True)
class LabeledList:
    """A served list, its features, and (for ``kind="labeled"``) one interaction's labels."""

    impression_id: str
    user_id: str
    session_id: str | None
    query: str | None
    item_ids: list[str]
    positions: list[int]
    labels: list[float]
    weight: float
    #: Where the record came from, ``topic/partition/offset``: a stable identity.
    source: str
    ts: int | None = None
    kind: str = "labeled"
    #: ``FeatureBlock.to_json()`` of the list at impression time (None: recompute).
    features: dict[str, Any] | None = None
    #: The impression's ``model_version`` (``shown`` records): which arm served the list.
    model_version: str | None = None

    def to_json(self) -> bytes:
        """Encode for the examples topic (orjson serialises dataclasses natively, about
        60x faster than going through ``dataclasses.asdict``)."""
        return orjson.dumps(self)

    @classmethod
    def from_json(cls, raw: bytes) -> LabeledList:
        """Decode from the examples topic."""
        data: dict[str, Any] = orjson.loads(raw)
        return cls(**data)
