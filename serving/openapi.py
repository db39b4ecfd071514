"""The scorer's OpenAPI 3.1 description, generated from the pydantic models of its bodies.

``GET /openapi.json`` serves :func:`openapi_document`; the API fuzz test
(``tests/unit/test_api_fuzz.py``, schemathesis) generates requests from it and checks
the answers against it. The schemas come from :mod:`serving.schemas`, so the description
cannot drift from the validation; the limits that live in the settings rather than in
the models (``STREAMRANK_MAX_CANDIDATES``, ``STREAMRANK_MAX_BODY_BYTES``) are written in.

Examples
--------
>>> from ops.settings import ScorerSettings
>>> doc = openapi_document(ScorerSettings(_env_file=None, max_candidates=50))
>>> doc["openapi"], sorted(doc["paths"])  # doctest: +NORMALIZE_WHITESPACE
('3.1.0', ['/admin/reload', '/admin/rollback', '/admin/unpin', '/dashboard',
           '/dashboard/api/series', '/dashboard/api/state', '/features', '/healthz',
           '/metrics', '/model', '/openapi.json', '/rank'])
>>> doc["components"]["schemas"]["RankRequest"]["properties"]["items"]["maxItems"]
50
>>> sorted(doc["paths"]["/rank"]["post"]["responses"])
['200', '400', '413', '422']
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from ops.settings import ScorerSettings
from serving.schemas import (
    ErrorResponse,
    HealthResponse,
    ModelInfo,
    RankRequest,
    RankResponse,
    ReloadResponse,
    ValidationErrorResponse,
)

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": _REF.format(model=model.__name__)}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": _ref(model)}}}


def _components(settings: ScorerSettings) -> dict[str, Any]:
    _, top = models_json_schema(
        [(RankRequest, "validation"), (RankResponse, "serialization"),
         (ValidationErrorResponse, "serialization"), (ErrorResponse, "serialization"),
         (HealthResponse, "serialization"), (ModelInfo, "serialization"),
         (ReloadResponse, "serialization")],
        ref_template=_REF)
    schemas: dict[str, Any] = top["$defs"]
    items = schemas["RankRequest"]["properties"]["items"]
    items["maxItems"] = settings.max_candidates
    items["description"] = (f"The candidates, 1 to {settings.max_candidates} "
                            "(STREAMRANK_MAX_CANDIDATES); more is a 422 naming `items`.")
    return schemas


def _monitor_paths(error: dict[str, str]) -> dict[str, Any]:
    """The dashboard, its feed and the rollback API (:mod:`monitor.dashboard`)."""
    unavailable = {"description": "Redis did not answer.",
                   "content": {"application/json": {"schema": error}}}
    invalid = _json(ValidationErrorResponse, "A bad parameter or body; `error` names it.")
    anything = {"application/json": {"schema": {"type": "object"}}}
    refused = {
        "401": {"description": "No `Authorization: Bearer` header.",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": error}}},
        "403": {"description": "A wrong token, or STREAMRANK_ADMIN_TOKEN unset.",
                "content": {"application/json": {"schema": error}}},
    }
    who = {"reason": {"type": "string", "maxLength": 500, "description": "Why (audit log)."},
           "who": {"type": "string", "maxLength": 500, "description": "Who (audit log)."}}
    return {
        "/dashboard": {"get": {
            "operationId": "dashboard", "summary": "The operators' dashboard (HTML)",
            "responses": {"200": {"description": "The page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}},
        }},
        "/dashboard/api/series": {"get": {
            "operationId": "dashboardSeries",
            "summary": "Points of the monitor's time series, oldest first",
            "parameters": [
                {"name": "count", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 7200}},
                {"name": "after", "in": "query", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]+(-[0-9]+)?$"}}],
            "responses": {"200": {"description": "`points`: the figures of each tick "
                                                 "(none, `redis_ok: false`, without Redis).",
                                  "content": anything},
                          "422": invalid},
        }},
        "/dashboard/api/state": {"get": {
            "operationId": "dashboardState",
            "summary": "Served, pinned and kept versions, alarms and the audit log",
            "responses": {"200": {"description": "The registry and the alarms "
                                                 "(`redis_ok: false` without Redis).",
                                  "content": anything}},
        }},
        "/admin/rollback": {"post": {
            "operationId": "adminRollback",
            "summary": "Serve and pin a kept version (admin token required)",
            "security": [{"adminToken": []}],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["version"],
                "properties": {"version": {"type": "integer", "minimum": 1}, **who}}}}},
            "responses": {"200": {"description": "`from`, `to`, `pinned`.", "content": anything},
                          **refused, "422": invalid, "503": unavailable},
        }},
        "/admin/unpin": {"post": {
            "operationId": "adminUnpin",
            "summary": "Follow the newest version again (admin token required)",
            "security": [{"adminToken": []}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": who}}}},
            "responses": {"200": {"description": "`from`, `to`, `changed`.", "content": anything},
                          **refused, "422": invalid, "503": unavailable},
        }},
    }


def openapi_document(settings: ScorerSettings) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the scorer configured by ``settings``."""
    too_large = (f"The body is larger than {settings.max_body_bytes} bytes "
                 "(STREAMRANK_MAX_BODY_BYTES).")
    error = _ref(ErrorResponse)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "streamrank scorer",
            "version": "1",
            "description": (
                "Wire contract version 1: re-rank search results per user. Bad input gets "
                "422 naming the field; no input causes a 5xx on /rank. Limits: "
                f"{settings.max_candidates} candidates, {settings.max_body_bytes} bytes "
                "per body."),
        },
        "paths": {
            "/rank": {"post": {
                "operationId": "rank",
                "summary": "Re-rank the candidates for one user",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(RankRequest)}}},
                "responses": {
                    "200": _json(RankResponse, "The candidates in the new order; "
                                 "`degraded` when no model (or no Redis) was available."),
                    "400": _json(ErrorResponse, "The client disconnected mid-body."),
                    "413": _json(ErrorResponse, too_large),
                    "422": _json(ValidationErrorResponse,
                                 "The body does not follow the contract; `error` names "
                                 "each offending field."),
                },
            }},
            "/features": {"post": {
                "operationId": "features",
                "summary": "The features the scorer computes for a /rank body (inspection)",
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": _ref(RankRequest)}}},
                "responses": {
                    "200": {"description": "Per candidate, in the upstream order: the "
                                           "feature values and hashed coordinates.",
                            "content": {"application/json": {"schema": {"type": "object"}}}},
                    "404": {"description": "No model is loaded yet.",
                            "content": {"application/json": {"schema": error}}},
                    "413": _json(ErrorResponse, too_large),
                    "422": _json(ValidationErrorResponse,
                                 "The body does not follow the contract."),
                },
            }},
            "/healthz": {"get": {
                "operationId": "healthz", "summary": "Liveness (200 while degraded too)",
                "responses": {"200": _json(HealthResponse, "The process answers.")},
            }},
            "/model": {"get": {
                "operationId": "model", "summary": "The served model",
                "responses": {"200": _json(ModelInfo, "Nulls when there is no model.")},
            }},
            "/metrics": {"get": {
                "operationId": "metrics", "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Prometheus text format.", "content": {
                    "text/plain": {"schema": {"type": "string"}}}}},
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi", "summary": "This description",
                "responses": {"200": {"description": "OpenAPI 3.1.", "content": {
                    "application/json": {"schema": {"type": "object"}}}}},
            }},
            "/admin/reload": {"post": {
                "operationId": "adminReload",
                "summary": "Load the current snapshot from Redis now (admin token required)",
                "security": [{"adminToken": []}],
                "responses": {
                    "200": _json(ReloadResponse, "Redis answered; `reloaded` says whether "
                                 "a model was loaded."),
                    "401": {"description": "No `Authorization: Bearer` header.",
                            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                            "content": {"application/json": {"schema": error}}},
                    "403": {"description": "A wrong token, or STREAMRANK_ADMIN_TOKEN unset "
                                           "(admin endpoints disabled).",
                            "content": {"application/json": {"schema": error}}},
                    "503": {"description": "Redis did not answer; the served model is kept.",
                            "content": {"application/json": {"schema": error}}},
                },
            }},
            **_monitor_paths(error),
        },
        "components": {
            "schemas": _components(settings),
            "securitySchemes": {"adminToken": {
                "type": "http", "scheme": "bearer",
                "description": "The value of STREAMRANK_ADMIN_TOKEN."}},
        },
    }
