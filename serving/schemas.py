"""Request and response bodies of ``POST /rank`` (wire contract version 1).

A request is validated once, here at the edge: :func:`parse_rank_request` turns the raw
body into a :class:`RankRequest` or raises :class:`BadRequest`, whose ``error`` names the
offending field (``"items.0.item_id: Field required"``) and whose ``detail`` lists every
problem with its location, ready to go into the ``422`` answer. Types are strict, as on
the topics: ``"59.9"`` is not a score, though ``12`` is.

Examples
--------
>>> req = parse_rank_request(b'{"user_id": "u-42", "items": [{"item_id": "a", "base_score": 12}]}')
>>> req.user_id, req.items[0].base_score, req.explain, req.log
('u-42', 12.0, False, True)
>>> try:
...     parse_rank_request(b'{"user_id": "u-42", "items": [{"base_score": "12.3"}]}')
... except BadRequest as exc:
...     for line in exc.error.split("; "):
...         print(line)
...     print([d["loc"] for d in exc.detail])
items.0.item_id: Field required
items.0.base_score: Input should be a valid number
[['items', 0, 'item_id'], ['items', 0, 'base_score']]
>>> parse_rank_request(b'{"user_id": "u", "items": [{"item_id": "a"}, {"item_id": "b"}]}',
...                    max_candidates=1)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
serving.schemas.BadRequest: items: at most 1 candidates per request, got 2; ...
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from streams.schemas import Id, Scalar, Text, describe_validation_error

__all__ = [
    "BadRequest",
    "Contribution",
    "ErrorDetail",
    "ErrorResponse",
    "HealthResponse",
    "ModelInfo",
    "RankItem",
    "RankRequest",
    "RankResponse",
    "RankedItem",
    "ReloadResponse",
    "ValidationErrorResponse",
    "parse_rank_request",
]


class _Schema(BaseModel):
    # strict: "59.9" is not a float (an int is); unknown fields are ignored (additions welcome)
    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


class RankItem(_Schema):
    """One candidate as the upstream search engine returned it."""

    item_id: Id
    #: The upstream engine's relevance; the fallback order when no model is available.
    base_score: float | None = None
    #: Request-time values (the price shown, ...), logged with the impression.
    features: Annotated[dict[Text, float], Field(max_length=256)] = {}


class RankRequest(_Schema):
    """The body of ``POST /rank``: who asks, and the candidates to re-rank."""

    user_id: Id
    session_id: Id | None = None
    query: Text | None = None
    items: Annotated[list[RankItem], Field(min_length=1)]
    context: Annotated[dict[Text, Scalar], Field(max_length=256)] = {}
    #: Fill each item's ``explanation`` with its largest feature contributions.
    explain: bool = False
    #: Log the served list as an ImpressionEvent (``false`` for previews and tests).
    log: bool = True
    #: The client's own impression id; one is generated when absent.
    impression_id: Id | None = None


class Contribution(_Schema):
    """One feature's additive contribution to an item's logit."""

    feature: str
    contribution: float


class RankedItem(_Schema):
    """One candidate in the served order (its position is the array index plus one)."""

    item_id: str
    score: float | None
    propensity: float | None = None
    explanation: list[Contribution] | None = None


class RankResponse(_Schema):
    """The body of a ``200`` answer to ``POST /rank``."""

    impression_id: str
    model_version: str | None
    degraded: bool
    items: list[RankedItem]


class ErrorDetail(BaseModel):
    """One problem of a rejected body: where (``loc``), what (``msg``), its kind (``type``)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """The body of a ``422``: ``error`` names each offending field, ``detail`` lists them."""

    error: str
    detail: list[ErrorDetail]


class ErrorResponse(BaseModel):
    """The body of every other error (``400``, ``401``, ``403``, ``413``, ``503``)."""

    error: str


class HealthResponse(BaseModel):
    """The body of ``GET /healthz`` (always ``200`` while the process answers)."""

    status: Literal["ok"]
    model_version: str | None
    redis_ok: bool
    degraded: bool


class ModelInfo(BaseModel):
    """The body of ``GET /model``: the served model, nulls when there is none."""

    model_version: str | None
    created_ms: int | None
    examples: int | None
    age_ms: int | None
    redis_ok: bool


class ReloadResponse(BaseModel):
    """The body of a ``200`` answer to ``POST /admin/reload``."""

    reloaded: bool
    model_version: str | None
    redis_ok: bool
    error: str | None


class BadRequest(ValueError):
    """A request body that does not follow the contract.

    ``str(exc)`` (also ``exc.error``) names each offending field and what is wrong;
    ``exc.detail`` is a list of ``{"loc": [...], "msg": ..., "type": ...}``.
    """

    def __init__(self, error: str, detail: list[dict[str, Any]]) -> None:
        super().__init__(error)
        self.error = error
        self.detail = detail

    def to_json(self) -> dict[str, Any]:
        """The ``422`` body: ``{"error": ..., "detail": [...]}``."""
        return {"error": self.error, "detail": self.detail}


def parse_rank_request(body: bytes, max_candidates: int | None = None) -> RankRequest:
    """Decode and validate one ``POST /rank`` body; raise :class:`BadRequest` when bad.

    Parameters
    ----------
    body
        The raw request body (UTF-8 JSON).
    max_candidates
        Most items one request may carry (``None``: no limit).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        msg = f"invalid JSON ({exc}); send one UTF-8 JSON object"
        raise BadRequest(f"body: {msg}",
                         [{"loc": ["body"], "msg": msg, "type": "json_invalid"}]) from None
    if not isinstance(data, dict):
        msg = f"expected a JSON object, got {type(data).__name__}"
        raise BadRequest(f"body: {msg}", [{"loc": ["body"], "msg": msg, "type": "model_type"}])
    items = data.get("items")
    # check the count before validating thousands of items for nothing
    if max_candidates is not None and isinstance(items, list) and len(items) > max_candidates:
        msg = (f"at most {max_candidates} candidates per request, got {len(items)}; "
               "split the list or raise STREAMRANK_MAX_CANDIDATES")
        raise BadRequest(f"items: {msg}", [{"loc": ["items"], "msg": msg, "type": "too_long"}])
    try:
        return RankRequest.model_validate(data)
    except ValidationError as exc:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False, include_context=False,
                                      include_input=False)]
        raise BadRequest(describe_validation_error(exc), detail) from None
