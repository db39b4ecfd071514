"""The worker's logic, free of Faust: state, the join, and the features of each list.

The Faust agents (``streams/app.py``) call one method per record and carry out the
returned :class:`Effects` (mirror state to Redis, send examples to the learner); the
evaluation harness and the tests drive the same class directly over an event log. The
tables are mutable mappings: Faust's changelog-backed tables in the worker, dicts
elsewhere.

Examples
--------
>>> from streams.schemas import ImpressionEvent, InteractionEvent, ItemEvent
>>> p = Pipeline.in_memory(bits=16)
>>> _ = p.on_item(ItemEvent(item_id="a", category="shoes", brand="acme", price=50.0), ts=0)
>>> imp = ImpressionEvent.model_validate({"impression_id": "i1", "user_id": "u",
...     "items": [{"item_id": "a", "position": 1}, {"item_id": "b", "position": 2}]})
>>> [e.kind for e in p.on_impression(imp, ts=1, source="imp/0/0").examples]
['shown']
>>> click = InteractionEvent(type="click", user_id="u", item_id="a", impression_id="i1")
>>> fx = p.on_interaction(click, ts=2, source="int/0/0")
>>> [e.kind for e in fx.examples], [k for k, _, _ in fx.states]
(['labeled'], ['user'])
>>> p.users["u"]["category"]
{'shoes': 1.0}
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from learner.catalog import ItemCache
from learner.click_model import update_click_model
from learner.features import FeatureBlock, RankContext, featurize
from learner.items import item_text
from learner.state import ITEM_KEY, State, record_exposure_keys, update_state
from learner.stats import ItemStats
from learner.text_encoder import default_encoder
from streams.examples import LabeledList
from streams.join import ImpressionJoin
from streams.schemas import ImpressionEvent, InteractionEvent, ItemEvent

__all__ = ["Effects", "Pipeline"]

DAY_MS = 24 * 3600 * 1000


@dataclass
class Effects:
    """What one record changed: examples for the learner, state and catalog to mirror."""

    examples: list[LabeledList] = field(default_factory=list)
    #: ``(kind, id, state)`` with kind ``"user"`` or ``"session"``
    states: list[tuple[str, str, State]] = field(default_factory=list)
    #: ``(item_id, entry or None for a deletion)``
    item: tuple[str, dict[str, Any] | None] | None = None


class Pipeline:
    """Catalog, user and session state, the join and the features, for one worker.

    Parameters
    ----------
    bits
        Log2 of the sparse hashed feature space.
    items
        The catalog as the features see it.
    impressions, pending, users, sessions
        Tables: joined lists, interactions waiting for their list, user and session state.
    stats
        Returns the item counters of the current snapshot (or ``None``).
    user_half_life_ms, session_half_life_ms
        Decay of the affinities.
    history_length
        Interactions kept per user and per session.
    click_model
        Keep the user's click model (:mod:`learner.click_model`) in the user state,
        one Newton step per shown list and per click (off by default: see
        ``docs/model.md``).
    """

    def __init__(self, *, bits: int, items: ItemCache, impressions: MutableMapping[str, Any],
                 pending: MutableMapping[str, Any], users: MutableMapping[str, Any],
                 sessions: MutableMapping[str, Any],
                 stats: Callable[[], ItemStats | None] = lambda: None,
                 user_half_life_ms: float = 14 * DAY_MS,
                 session_half_life_ms: float = 3600 * 1000, history_length: int = 50,
                 click_model: bool = False) -> None:
        self.bits = bits
        self.items = items
        self.join = ImpressionJoin(impressions=impressions, pending=pending)
        self.users = users
        self.sessions = sessions
        self.stats = stats
        self.user_half_life_ms = user_half_life_ms
        self.session_half_life_ms = session_half_life_ms
        self.history_length = history_length
        self.click_model = click_model

    @classmethod
    def in_memory(cls, bits: int, **options: Any) -> Pipeline:
        """A pipeline over plain dicts (replays, tests)."""
        return cls(bits=bits, items=ItemCache(), impressions={}, pending={}, users={},
                   sessions={}, **options)

    def features(self, ctx: RankContext, item_ids: list[str],
                 base_scores: list[float | None] | None = None,
                 request_features: list[dict[str, float]] | None = None) -> FeatureBlock:
        """The shared features of a list, with the current state of its user and session."""
        return featurize(ctx, item_ids, self.bits, base_scores=base_scores,
                         request_features=request_features, user=self.users.get(ctx.user_id),
                         session=self.sessions.get(ctx.session_id) if ctx.session_id else None,
                         items=self.items, stats=self.stats())

    def on_item(self, ev: ItemEvent, ts: int) -> Effects:
        """Upsert or delete a catalog item."""
        if ev.deleted:
            self.items.put(ev.item_id, None)
            return Effects(item=(ev.item_id, None))
        entry = ev.model_dump(exclude_none=True)
        entry.setdefault("ts", ts)
        encoder = default_encoder()
        if encoder is not None and (text := item_text(entry)):  # once, here; the scorer reads it
            entry["text_vector"] = np.round(encoder.encode_one(text), 5).tolist()
        self.items.put(ev.item_id, entry)
        return Effects(item=(ev.item_id, entry))

    def on_impression(self, imp: ImpressionEvent, ts: int, source: str) -> Effects:
        """Compute the list's features now (the state as the user saw it), remember the
        list for its clicks, and tell the learner it was shown."""
        ordered = sorted(imp.items, key=lambda it: it.position)
        ids = [it.item_id for it in ordered]
        block = self.features(
            RankContext(imp.user_id, imp.session_id, imp.query), ids,
            base_scores=[it.base_score for it in ordered],
            request_features=[it.features for it in ordered] if any(
                it.features for it in ordered) else None)
        ts = imp.ts or ts
        shown = LabeledList(impression_id=imp.impression_id, user_id=imp.user_id,
                            session_id=imp.session_id, query=imp.query, item_ids=ids,
                            positions=[it.position for it in ordered], labels=[0.0] * len(ids),
                            weight=0.0, source=source, ts=ts, kind="shown",
                            model_version=imp.model_version)
        waiting = self.join.on_impression(imp, ts=ts, features=block.to_json())
        fx = Effects(examples=[shown, *waiting])
        seen = [(self._exposure_keys(it.item_id), it.position) for it in ordered]
        user = record_exposure_keys(self.users.get(imp.user_id), seen, ts,
                                    self.user_half_life_ms)
        if self.click_model:
            update_click_model(user, self.items)
        self.users[imp.user_id] = user
        fx.states.append(("user", imp.user_id, user))
        if imp.session_id:
            session = record_exposure_keys(self.sessions.get(imp.session_id), seen, ts,
                                           self.session_half_life_ms)
            self.sessions[imp.session_id] = session
            fx.states.append(("session", imp.session_id, session))
        return fx

    def _exposure_keys(self, item_id: str) -> list[str]:
        """The item's ``learner.state.exposure_keys``, as the catalog keeps them."""
        info = self.items.peek(item_id)
        return [ITEM_KEY + item_id] if info is None else [k for k in info.lift_keys if k]

    def _attrs(self, item_id: str) -> dict[str, Any] | None:
        """What the state keeps of an item: its category, brand, price and vector."""
        info = self.items.peek(item_id)
        return None if info is None else {"category": info.category, "brand": info.brand,
                                          "price": info.price, "vector": info.vector}

    def on_interaction(self, ev: InteractionEvent, ts: int, source: str) -> Effects:
        """Update the user's and session's state; join a click, cart or purchase."""
        ts = ev.ts or ts
        attrs = self._attrs(ev.item_id)
        fx = Effects()
        user = update_state(self.users.get(ev.user_id), ev.type, ev.item_id, attrs, ts,
                            self.user_half_life_ms, self.history_length)
        if self.click_model and ev.type == "click":  # the counts the model reads changed
            update_click_model(user, self.items)
        self.users[ev.user_id] = user
        fx.states.append(("user", ev.user_id, user))
        if ev.session_id:
            session = update_state(self.sessions.get(ev.session_id), ev.type, ev.item_id, attrs,
                                   ts, self.session_half_life_ms, self.history_length)
            self.sessions[ev.session_id] = session
            fx.states.append(("session", ev.session_id, session))
        fx.examples = self.join.on_interaction(ev, source=source)
        return fx
