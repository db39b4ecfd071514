"""Join interactions to the impression they came from, by ``impression_id``.

Impressions and interactions are both keyed by ``user_id``, so an impression and its
clicks land on the same partition number of their topics and one worker sees both. They
can still arrive in either order (two topics are two logs), so the join is symmetric:
an interaction whose impression is not known yet waits in ``pending`` and is joined when
the impression arrives.

The tables are plain mutable mappings: Faust's changelog-backed tables in the worker,
dicts in tests. Values are JSON-friendly.

Examples
--------
>>> from streams.schemas import ImpressionEvent, InteractionEvent
>>> join = ImpressionJoin(impressions={}, pending={})
>>> imp = ImpressionEvent.model_validate({"impression_id": "i1", "user_id": "u",
...     "items": [{"item_id": "a", "position": 1}, {"item_id": "b", "position": 2}]})
>>> click = InteractionEvent.model_validate({"type": "click", "user_id": "u",
...     "item_id": "b", "impression_id": "i1"})
>>> join.on_interaction(click, source="interactions/0/5")   # before its impression
[]
>>> [ex.labels for ex in join.on_impression(imp, ts=1)]
[[0.0, 1.0]]
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from streams.examples import INTERACTION_WEIGHTS, LabeledList
from streams.schemas import ImpressionEvent, InteractionEvent

__all__ = ["ImpressionJoin"]

#: Most interactions kept waiting for one impression that has not arrived.
MAX_PENDING_PER_IMPRESSION = 64


class ImpressionJoin:
    """Symmetric stream join of interactions to impressions.

    Parameters
    ----------
    impressions
        ``impression_id -> compact impression`` (what the join needs of it).
    pending
        ``impression_id -> [interaction, ...]`` that arrived before their impression.
    """

    def __init__(self, impressions: MutableMapping[str, Any],
                 pending: MutableMapping[str, Any]) -> None:
        self.impressions = impressions
        self.pending = pending

    def on_impression(self, imp: ImpressionEvent, ts: int,
                      features: dict[str, Any] | None = None) -> list[LabeledList]:
        """Remember a served list (with the features it was ranked by, in position order);
        return the examples of any interactions that waited for it."""
        ordered = sorted(imp.items, key=lambda it: it.position)
        compact = {
            "user_id": imp.user_id, "session_id": imp.session_id, "query": imp.query,
            "item_ids": [it.item_id for it in ordered],
            "positions": [it.position for it in ordered], "ts": ts, "features": features,
        }
        self.impressions[imp.impression_id] = compact
        waiting = self.pending.pop(imp.impression_id, None) or []
        out = []
        for w in waiting:
            ex = self._label(imp.impression_id, compact, w["type"], w["item_id"], w["source"],
                             w.get("ts"))
            if ex is not None:
                out.append(ex)
        return out

    def on_interaction(self, ev: InteractionEvent, source: str) -> list[LabeledList]:
        """Join one interaction; return its example, or nothing while its list is unknown."""
        if ev.impression_id is None or ev.type not in INTERACTION_WEIGHTS:
            return []
        compact = self.impressions.get(ev.impression_id)
        if compact is None:
            waiting = list(self.pending.get(ev.impression_id) or [])
            if len(waiting) < MAX_PENDING_PER_IMPRESSION:
                waiting.append({"type": ev.type, "item_id": ev.item_id, "source": source,
                                "ts": ev.ts})
                self.pending[ev.impression_id] = waiting
            return []
        ex = self._label(ev.impression_id, compact, ev.type, ev.item_id, source, ev.ts)
        return [ex] if ex is not None else []

    @staticmethod
    def _label(impression_id: str, compact: dict[str, Any], kind: str, item_id: str,
               source: str, ts: int | None) -> LabeledList | None:
        item_ids: list[str] = compact["item_ids"]
        if item_id not in item_ids:
            return None  # an interaction with an item that was not in the list
        labels = [1.0 if i == item_id else 0.0 for i in item_ids]
        return LabeledList(
            impression_id=impression_id, user_id=compact["user_id"],
            session_id=compact["session_id"], query=compact["query"], item_ids=item_ids,
            positions=compact["positions"], labels=labels, weight=INTERACTION_WEIGHTS[kind],
            source=source, ts=ts, features=compact.get("features"),
        )
