"""The HTTP scorer: a Starlette app that re-ranks candidates with the current snapshot.

Routes (wire contract version 1):

``POST /rank``
    Re-rank the candidates for one user. Bad input gets ``422`` naming the field, a body
    over ``max_body_bytes`` gets ``413``; everything else gets ``200``, ``degraded`` (the
    upstream order) when no model is available or Redis did not answer the last poll.
``GET /healthz``
    Liveness: ``200`` while the process can answer (degraded answers are answers).
``GET /metrics``
    Prometheus text format.
``GET /model``
    The served model's version, creation time, examples trained on and age (nulls when
    there is none).
``GET /openapi.json``
    The OpenAPI 3.1 description of these routes (:mod:`serving.openapi`).
``POST /admin/reload``
    Load the current snapshot from Redis now. Needs ``Authorization: Bearer <token>``
    (``STREAMRANK_ADMIN_TOKEN``; see :mod:`serving.auth`).

``GET /dashboard``, ``GET /dashboard/api/series``, ``GET /dashboard/api/state``
    The operators' dashboard and its feed; ``POST /admin/rollback``, ``POST /admin/unpin``
    pin serving to a kept version and release it (admin token; :mod:`monitor.dashboard`).

Security options (Redis AUTH/TLS, Kafka SASL/TLS) come from :mod:`ops.security`; the
Redis URL is logged only masked.

Clients (Redis, the snapshot cache, the impression logger) are created in the lifespan
and reached through ``app.state``; handlers only decode, delegate and encode.

Examples
--------
With Redis and Kafka both unreachable, the answer is the upstream order, degraded:

>>> import asyncio, httpx
>>> settings = ScorerSettings(redis_url="redis://127.0.0.1:1/0",
...                           kafka_bootstrap_servers="127.0.0.1:1")
>>> async def ask(app, body):
...     async with app.router.lifespan_context(app), httpx.AsyncClient(
...             transport=httpx.ASGITransport(app=app), base_url="http://scorer") as client:
...         return await client.post("/rank", json=body)
>>> r = asyncio.run(ask(create_app(settings), {"user_id": "u-42", "log": False, "items": [
...     {"item_id": "sku-1", "base_score": 1.0}, {"item_id": "sku-2", "base_score": 2.0}]}))
>>> r.status_code, r.json()["degraded"], [i["item_id"] for i in r.json()["items"]]
(200, True, ['sku-2', 'sku-1'])
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from learner.features import RankContext
from learner.store import SnapshotStore
from monitor.dashboard import MonitorFeed, admin_routes, dashboard_routes
from monitor.prometheus import MonitorCollector
from ops.security import librdkafka_options, redis_options
from ops.settings import ScorerSettings
from serving.auth import require_admin
from serving.context import RequestState, StateReader
from serving.features_endpoint import features_endpoint
from serving.impressions import ImpressionLogger
from serving.metrics import CONTENT_TYPE, ScorerMetrics
from serving.openapi import openapi_document
from serving.ranking import RankedRow, rank
from serving.schemas import BadRequest, RankRequest, parse_rank_request
from serving.snapshots import SnapshotCache
from streams.topics import Topics

__all__ = ["create_app"]

log = logging.getLogger(__name__)

#: How long shutdown waits for queued impressions to reach Kafka.
IMPRESSION_CLOSE_TIMEOUT_S = 5.0

Handler = Callable[[Request], Awaitable[Response]]


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


class _BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


# -- /rank ------------------------------------------------------------------------------


async def _request_state(req: RankRequest, reader: StateReader | None,
                         cache: SnapshotCache) -> RequestState | None:
    """The user's and session's state from Redis; ``None`` when Redis does not answer
    (which the snapshot cache then reports too, until its next successful poll)."""
    if reader is None:
        return (None, None)
    try:
        return await reader.load(req.user_id, req.session_id,
                                 [it.item_id for it in req.items])
    except Exception as exc:  # redis down or slow: rank without state, say so
        log.debug("request state unavailable: %s", exc)
        cache.redis_ok = False
        return None


def _answer(req: RankRequest, cache: SnapshotCache, impressions: ImpressionLogger,
            metrics: ScorerMetrics, request_state: RequestState | None = (None, None),
            reader: StateReader | None = None) -> dict[str, Any]:
    """Rank, log the served list and build the response body (may raise: see caller)."""
    # A cached model keeps serving through a Redis outage (flagged degraded: the features
    # it cannot refresh are stale); with no model at all the answer is the upstream order.
    model = cache.model
    redis_ok = cache.redis_ok and request_state is not None
    reason = None if model is not None and redis_ok else (
        "redis_down" if not redis_ok else "no_model")
    user, session = request_state if request_state is not None else (None, None)
    ctx = RankContext(user_id=req.user_id, session_id=req.session_id, query=req.query)
    rows: list[RankedRow]
    try:
        rows = rank(model, ctx, req.items, req.explain, user=user, session=session,
                    catalog=reader.catalog if reader is not None else None)
    except Exception:
        log.exception("ranking failed; answering in upstream order")
        metrics.rank_errors.inc()
        model, reason = None, "error"
        rows = rank(None, ctx, req.items)
    if reason is not None:
        metrics.degraded.labels(reason=reason).inc()
    version = model.version if model is not None else None
    impression_id = req.impression_id or f"imp-{uuid.uuid4().hex}"
    items = req.items
    if req.log:
        impressions.log(_impression(req, impression_id, rows, version), validated=True)
    return {"impression_id": impression_id, "model_version": version,
            "degraded": reason is not None,
            "items": [{"item_id": items[i].item_id, "score": score, "propensity": None,
                       "explanation": explanation} for i, score, explanation in rows]}


def _impression(req: RankRequest, impression_id: str, rows: list[RankedRow],
                version: str | None) -> dict[str, Any]:
    """The served list as an impression event, from the validated request's values only
    (so it satisfies the contract without validating it again); ``None`` fields left out.
    """
    items = req.items
    served = []
    for pos, (i, _, _) in enumerate(rows, start=1):
        it = items[i]
        entry: dict[str, Any] = {"item_id": it.item_id, "position": pos}
        if it.base_score is not None:
            entry["base_score"] = it.base_score
        if it.features:
            entry["features"] = it.features
        served.append(entry)
    event: dict[str, Any] = {"impression_id": impression_id, "user_id": req.user_id,
                             "items": served, "ts": int(time.time() * 1000)}
    for key, value in (("session_id", req.session_id), ("query", req.query),
                       ("context", req.context or None), ("model_version", version)):
        if value is not None:
            event[key] = value
    return event


def _as_sent(req: RankRequest) -> dict[str, Any]:
    """The last resort: the candidates as sent, unlogged (nothing here can fail)."""
    return {"impression_id": req.impression_id or f"imp-{uuid.uuid4().hex}",
            "model_version": None, "degraded": True,
            "items": [{"item_id": it.item_id, "score": it.base_score, "propensity": None,
                       "explanation": None} for it in req.items]}


async def rank_endpoint(request: Request) -> Response:
    """``POST /rank``: decode, delegate to :func:`_answer`, encode."""
    state = request.app.state
    settings: ScorerSettings = state.settings
    metrics: ScorerMetrics = state.metrics
    started = time.perf_counter()
    try:
        req = parse_rank_request(await _read_body(request, settings.max_body_bytes),
                                 settings.max_candidates)
    except BadRequest as exc:
        return _json(422, exc.to_json())
    except _BodyTooLarge:
        return _json(413, {"error": f"body: larger than {settings.max_body_bytes} bytes; "
                                    "send fewer candidates per request or raise "
                                    "STREAMRANK_MAX_BODY_BYTES"})
    except ClientDisconnect:
        return _json(400, {"error": "body: the client disconnected before sending it all"})
    metrics.candidates.observe(len(req.items))
    reader: StateReader | None = getattr(state, "reader", None)
    request_state = await _request_state(req, reader, state.cache) if (
        state.cache.model is not None) else (None, None)
    try:
        body = _answer(req, state.cache, state.impressions, metrics, request_state, reader)
    except Exception:  # no input may cause a 5xx: answer as sent, degraded
        log.exception("POST /rank failed; answering the candidates as sent")
        metrics.rank_errors.inc()
        metrics.degraded.labels(reason="error").inc()
        body = _as_sent(req)
    response = _json(200, body)
    metrics.rank_latency.observe(time.perf_counter() - started)
    return response


# -- the other routes -------------------------------------------------------------------


def _model_info(cache: SnapshotCache | None) -> dict[str, Any]:
    model = cache.model if cache is not None else None
    if model is None:
        return {"model_version": None, "created_ms": None, "examples": None, "age_ms": None}
    snap = model.snapshot
    return {"model_version": model.version, "created_ms": snap.created_ms,
            "examples": snap.examples, "age_ms": int(time.time() * 1000) - snap.created_ms}


async def model_endpoint(request: Request) -> Response:
    """``GET /model``: the served model (nulls when there is none); always ``200``."""
    cache: SnapshotCache | None = getattr(request.app.state, "cache", None)
    return _json(200, {**_model_info(cache),
                       "redis_ok": bool(cache is not None and cache.redis_ok)})


async def healthz_endpoint(request: Request) -> Response:
    """``GET /healthz``: ``200`` while the process answers; says whether it is degraded."""
    cache: SnapshotCache | None = getattr(request.app.state, "cache", None)
    model = cache.model if cache is not None else None
    redis_ok = bool(cache is not None and cache.redis_ok)
    return _json(200, {"status": "ok", "model_version": model.version if model else None,
                       "redis_ok": redis_ok, "degraded": model is None or not redis_ok})


async def metrics_endpoint(request: Request) -> Response:
    """``GET /metrics``: Prometheus text format."""
    metrics: ScorerMetrics = request.app.state.metrics
    return Response(metrics.render(), media_type=CONTENT_TYPE)


async def openapi_endpoint(request: Request) -> Response:
    """``GET /openapi.json``: the OpenAPI description (built once, at app creation)."""
    return Response(request.app.state.openapi, media_type="application/json")


@require_admin
async def reload_endpoint(request: Request) -> Response:
    """``POST /admin/reload``: load the current snapshot now, even an already served
    version or one that failed before; ``503`` when Redis does not answer."""
    cache: SnapshotCache | None = getattr(request.app.state, "cache", None)
    if cache is None:
        return _json(503, {"error": "the scorer is still starting; try again"})
    errors = cache.errors
    reloaded = await cache.refresh(force=True)
    model = cache.model
    body = {"reloaded": reloaded, "model_version": model.version if model else None,
            "redis_ok": cache.redis_ok,
            "error": cache.last_error if cache.errors > errors else None}
    log.info("admin reload: %s", body)
    if not cache.redis_ok:
        return _json(503, {"error": f"{cache.last_error}; the served model "
                                    f"({body['model_version']}) is kept"})
    return _json(200, body)


def _counted(endpoint: str, handler: Handler) -> Handler:
    async def counted(request: Request) -> Response:
        response = await handler(request)
        request.app.state.metrics.requests.labels(
            endpoint=endpoint, status=str(response.status_code)).inc()
        return response

    counted.__doc__ = handler.__doc__
    return counted


# -- the app ----------------------------------------------------------------------------


def create_app(settings: ScorerSettings | None = None) -> Starlette:
    """The scorer as an ASGI app.

    Parameters
    ----------
    settings
        The scorer's settings; read from ``STREAMRANK_`` environment variables by default.
    """
    settings = settings if settings is not None else ScorerSettings()
    # translated here, so that a missing certificate file fails at startup, naming its variable
    kafka_options = librdkafka_options(settings)
    redis_security = redis_options(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        log.info("scorer: Redis %s, Kafka %s (%s), topics %r", settings.redis_url_masked,
                 settings.kafka_bootstrap_servers, settings.kafka_security_protocol,
                 settings.topic_prefix)
        # one quick retry (a pooled connection Redis closed); the poll loop is the real retry
        redis = aioredis.Redis.from_url(
            settings.redis_url, decode_responses=False,
            socket_timeout=settings.redis_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            retry=Retry(NoBackoff(), retries=1), **redis_security)
        # snapshots are megabytes: their reads get a client with a longer timeout, off the
        # request path (which only ever waits settings.redis_timeout_s)
        snapshot_redis = aioredis.Redis.from_url(
            settings.redis_url, decode_responses=False,
            socket_timeout=settings.snapshot_timeout_s,
            socket_connect_timeout=settings.redis_timeout_s,
            retry=Retry(NoBackoff(), retries=1), **redis_security)
        cache = SnapshotCache(SnapshotStore(snapshot_redis, prefix=settings.redis_prefix),
                              refresh_interval_ms=settings.refresh_interval_ms)
        impressions = ImpressionLogger(settings.kafka_bootstrap_servers,
                                       Topics(settings.topic_prefix).impressions,
                                       buffer_size=settings.impression_buffer,
                                       **kafka_options)
        app.state.cache = cache
        app.state.reader = StateReader(redis, settings.redis_prefix)
        app.state.impressions = impressions
        app.state.metrics.bind(cache, impressions)
        # the dashboard, the rollback API and the monitor's /metrics read Redis off the
        # request path, with the snapshot client's longer timeout
        app.state.monitor_redis = snapshot_redis
        app.state.monitor = MonitorFeed(snapshot_redis, settings.redis_prefix)
        impressions.start()
        try:
            await cache.start()
            async with app.state.monitor.running():
                yield
        finally:
            await cache.stop()
            await asyncio.to_thread(impressions.close, IMPRESSION_CLOSE_TIMEOUT_S)
            await redis.aclose()
            await snapshot_redis.aclose()

    app = Starlette(routes=[
        Route("/rank", _counted("/rank", rank_endpoint), methods=["POST"]),
        Route("/features", _counted("/features", features_endpoint), methods=["POST"]),
        Route("/healthz", _counted("/healthz", healthz_endpoint), methods=["GET"]),
        Route("/metrics", _counted("/metrics", metrics_endpoint), methods=["GET"]),
        Route("/model", _counted("/model", model_endpoint), methods=["GET"]),
        Route("/openapi.json", _counted("/openapi.json", openapi_endpoint), methods=["GET"]),
        Route("/admin/reload", _counted("/admin/reload", reload_endpoint), methods=["POST"]),
        *admin_routes(_counted), *dashboard_routes(),
    ], lifespan=lifespan)
    app.state.settings = settings
    app.state.openapi = orjson.dumps(openapi_document(settings))
    app.state.metrics = ScorerMetrics()
    app.state.metrics.registry.register(
        MonitorCollector(lambda: getattr(app.state, "monitor", None)))
    return app
