"""Event schemas of wire contract version 1, validated once at the edge.

Every value on a topic is one UTF-8 JSON object. :func:`decode_event` turns raw bytes
into a typed event or raises :class:`InvalidEvent` whose message names the field and
what is wrong with it, ready to go into the dead-letter record.

Examples
--------
>>> e = decode_event(ItemEvent, b'{"item_id": "sku-1", "price": 59.9}')
>>> e.item_id, e.price, e.tags
('sku-1', 59.9, [])
>>> decode_event(InteractionEvent, b'{"type": "click", "user_id": "u", "item_id": 7}')
Traceback (most recent call last):
...
streams.schemas.InvalidEvent: item_id: Input should be a valid string
>>> decode_event(ItemEvent, b'\\xff')
Traceback (most recent call last):
...
streams.schemas.InvalidEvent: payload: not valid UTF-8 JSON (...)
"""

from __future__ import annotations

from typing import Annotated, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, StringConstraints

__all__ = [
    "CONTRACT_VERSION",
    "Event",
    "ImpressionEvent",
    "ImpressionItem",
    "InteractionEvent",
    "InvalidEvent",
    "ItemEvent",
    "INTERACTION_TYPES",
    "decode_event",
    "describe_validation_error",
]

CONTRACT_VERSION = 1
INTERACTION_TYPES = ("view", "click", "add_to_cart", "purchase")

#: Identifiers: non-empty, bounded, no surrounding whitespace trimming (kept as sent).
Id = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Text = Annotated[str, StringConstraints(max_length=2048)]
Scalar = str | int | float | bool


class _Schema(BaseModel):
    # strict: "59.9" is not a price; unknown fields are ignored (additions are welcome)
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=False)


class ItemEvent(_Schema):
    """Catalog upsert (``"deleted": true`` removes the item)."""

    item_id: Id
    title: Text | None = None
    category: Text | None = None
    brand: Text | None = None
    price: Annotated[float, Field(ge=0)] | None = None
    tags: Annotated[list[Text], Field(max_length=256)] = []
    attributes: Annotated[dict[Text, Scalar], Field(max_length=256)] = {}
    embedding: Annotated[list[float], Field(max_length=4096)] | None = None
    deleted: bool = False
    ts: int | None = None


class ImpressionItem(_Schema):
    """One entry of a served list."""

    item_id: Id
    position: Annotated[int, Field(ge=1)]
    base_score: float | None = None
    propensity: Annotated[float, Field(gt=0, le=1)] | None = None
    features: Annotated[dict[Text, float], Field(max_length=256)] = {}


class ImpressionEvent(_Schema):
    """One served result list, in the order the user saw it."""

    impression_id: Id
    user_id: Id
    session_id: Id | None = None
    query: Text | None = None
    items: Annotated[list[ImpressionItem], Field(min_length=1, max_length=10_000)]
    context: Annotated[dict[Text, Scalar], Field(max_length=256)] = {}
    model_version: Text | None = None
    ts: int | None = None


class InteractionEvent(_Schema):
    """A view, click, add-to-cart or purchase."""

    type: Literal["view", "click", "add_to_cart", "purchase"]
    user_id: Id
    session_id: Id | None = None
    item_id: Id
    impression_id: Id | None = None
    value: float | None = None
    ts: int | None = None


Event = ItemEvent | ImpressionEvent | InteractionEvent
E = TypeVar("E", ItemEvent, ImpressionEvent, InteractionEvent)


class InvalidEvent(ValueError):
    """A record that does not follow the contract; the message names the field."""


def describe_validation_error(exc: ValidationError, limit: int = 3) -> str:
    """One line naming each offending field (dotted path) and what is wrong with it.

    >>> try:
    ...     ImpressionEvent.model_validate({"impression_id": "i", "user_id": "u",
    ...                                     "items": [{"item_id": "a", "position": 0}]})
    ... except ValidationError as exc:
    ...     print(describe_validation_error(exc))
    items.0.position: Input should be greater than or equal to 1
    """
    parts = []
    for err in exc.errors()[:limit]:
        loc = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{loc}: {err['msg']}")
    more = len(exc.errors()) - limit
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)


def decode_event(schema: type[E], raw: bytes | None) -> E:
    """Parse and validate one record value; raise :class:`InvalidEvent` when it is bad."""
    if raw is None:
        raise InvalidEvent("payload: empty record (no value)")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"payload: not valid UTF-8 JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidEvent(f"payload: expected a JSON object, got {type(data).__name__}")
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None
