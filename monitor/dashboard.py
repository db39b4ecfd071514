"""The operators' dashboard: a page of live charts, its JSON feed, and the rollback API.

Routes (mounted by the scorer, ``streamrank serve``, and by ``streamrank dashboard``):

``GET /dashboard``
    The page: plain HTML and JavaScript polling the feed, charts drawn with uPlot
    (vendored in ``monitor/static``; nothing loads from the internet).
``GET /dashboard/api/series?count=N&after=ID``
    Points of the monitor's time series, oldest first (``after``: only newer ones).
``GET /dashboard/api/state``
    The served, pinned, newest and kept versions (good ones with their quality), the
    active alarm, the alarm history and the audit log.
``POST /admin/rollback`` ``{"version": N, "reason": "...", "who": "..."}``
    Serve kept version ``N`` and pin it (a rollback or a roll-forward); admin token.
``POST /admin/unpin`` ``{"reason": "...", "who": "..."}``
    Follow the newest version again; admin token.

The routes reach Redis through ``app.state.monitor_redis`` and the deployment's prefix
through ``app.state.settings.redis_prefix``. Bad bodies get ``422`` naming the field. The
feed answers ``200`` with ``redis_ok: false`` when Redis does not answer; the admin
endpoints answer ``503`` then (nothing was switched).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from learner.registry import ModelRegistry, NotKept
from monitor.series import SeriesReader
from serving.auth import require_admin

__all__ = ["STATIC", "MonitorFeed", "admin_routes", "dashboard_routes"]

log = logging.getLogger(__name__)

#: The page, its script and the vendored chart library.
STATIC = Path(__file__).with_name("static")

#: Most points one feed request returns.
MAX_POINTS = 7200

Handler = Callable[[Request], Awaitable[Response]]


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def _unavailable(exc: Exception) -> Response:
    return _json(503, {"error": f"redis: {type(exc).__name__}: {exc}; try again"})


def _redis(request: Request) -> aioredis.Redis | None:
    return getattr(request.app.state, "monitor_redis", None)


def _prefix(request: Request) -> str:
    return str(request.app.state.settings.redis_prefix)


class MonitorFeed:
    """The newest monitor point, alarm and registry state, refreshed in the background
    (so ``/metrics`` reads memory, never Redis, at scrape time)."""

    def __init__(self, redis: aioredis.Redis, prefix: str, interval_s: float = 1.0) -> None:
        self.reader = SeriesReader(redis, prefix)
        self.registry = ModelRegistry(redis, prefix)
        self.interval_s = interval_s
        self.point: dict[str, Any] | None = None
        self.alarm: dict[str, Any] | None = None
        self.alarms_total = 0
        self.pinned: int | None = None
        self.current: int | None = None
        self.ok = False
        self._task: asyncio.Task[None] | None = None

    async def refresh(self) -> None:
        """Read once; on failure keep the last values and say so (``ok``)."""
        try:
            self.point = await self.reader.latest()
            self.alarm = await self.reader.alarm()
            self.alarms_total = sum(a.get("state") == "fired"
                                    for a in await self.reader.alarms(count=1000))
            state = await self.registry.state()
            self.pinned, self.current = state.pinned, state.current
            self.ok = True
        except Exception as exc:  # Redis away: the scorer goes on; /metrics says so
            log.debug("monitor feed: %s", exc)
            self.ok = False

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_s)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[MonitorFeed]:
        """Refresh in the background while the context is open."""
        self._task = asyncio.create_task(self._run(), name="streamrank-monitor-feed")
        try:
            yield self
        finally:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task


# -- the page and its feed ----------------------------------------------------------------


async def dashboard_page(request: Request) -> Response:
    """``GET /dashboard``: the page."""
    return FileResponse(STATIC / "dashboard.html", media_type="text/html")


def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | str:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        return f"an integer from {low} to {high}"
    return int(raw)


async def series_endpoint(request: Request) -> Response:
    """``GET /dashboard/api/series``: points, oldest first."""
    count = _int_param(request, "count", 1800, 1, MAX_POINTS)
    if isinstance(count, str):
        return _field_error("count", count)
    after = request.query_params.get("after")
    if after is not None and not _stream_id(after):
        return _field_error("after", "a point id such as 1764547200000-0")
    redis = _redis(request)
    try:
        if redis is None:
            raise ConnectionError("the server is still starting")
        points = await SeriesReader(redis, _prefix(request)).points(count=count, after=after)
    except Exception as exc:  # like /model: always 200, saying Redis did not answer
        return _json(200, {"points": [], "redis_ok": False,
                           "error": f"redis: {type(exc).__name__}: {exc}"})
    return _json(200, {"points": points, "redis_ok": True})


def _stream_id(text: str) -> bool:
    ms, _, seq = text.partition("-")
    return ms.isdigit() and (seq == "" or seq.isdigit()) and len(text) <= 40


async def state_endpoint(request: Request) -> Response:
    """``GET /dashboard/api/state``: versions, alarm, alarm history, audit log."""
    redis = _redis(request)
    prefix = _prefix(request)
    try:
        if redis is None:
            raise ConnectionError("the server is still starting")
        registry, reader = ModelRegistry(redis, prefix), SeriesReader(redis, prefix)
        state = (await registry.state()).as_dict()
        body = {**state, "alarm": await reader.alarm(), "alarms": await reader.alarms(20),
                "audit": await registry.audit(50), "redis_ok": True}
    except Exception as exc:  # like /model: always 200, saying Redis did not answer
        return _json(200, {"current": None, "pinned": None, "versions": [], "newest": None,
                           "good": {}, "alarm": None, "alarms": [], "audit": [],
                           "redis_ok": False, "error": f"redis: {type(exc).__name__}: {exc}"})
    cache = getattr(request.app.state, "cache", None)
    model = cache.model if cache is not None else None
    body["scorer_version"] = model.snapshot.version if model is not None else None
    return _json(200, body)


def dashboard_routes() -> list[BaseRoute]:
    """The page, its static files and its feed."""
    return [
        Route("/dashboard", dashboard_page, methods=["GET"]),
        Route("/dashboard/", lambda r: RedirectResponse("/dashboard"), methods=["GET"]),
        Route("/dashboard/api/series", series_endpoint, methods=["GET"]),
        Route("/dashboard/api/state", state_endpoint, methods=["GET"]),
        Mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static"),
    ]


# -- the rollback API -----------------------------------------------------------------------


def _field_error(field: str, message: str) -> Response:
    """A ``422`` naming ``field`` (the scorer's ``ValidationErrorResponse`` shape)."""
    return _json(422, {"error": f"{field}: {message}",
                       "detail": [{"loc": [field], "msg": message, "type": "value_error"}]})


async def _body(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    if len(raw) > 10_000:
        return _field_error("body", "at most 10000 bytes")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _field_error("body", "not valid JSON")
    if not isinstance(body, dict):
        return _field_error("body", "a JSON object")
    for name in ("reason", "who"):
        value = body.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 500):
            return _field_error(name, "a string of at most 500 characters")
    return body


def _who(request: Request, body: dict[str, Any]) -> str:
    client = request.client.host if request.client else "?"
    return f"{body.get('who') or 'operator'} (api, {client})"


@require_admin
async def rollback_endpoint(request: Request) -> Response:
    """``POST /admin/rollback``: serve and pin a kept version."""
    body = await _body(request)
    if isinstance(body, Response):
        return body
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 2**53:
        return _field_error("version", "a kept version number (an integer from 1)")
    redis = _redis(request)
    if redis is None:
        return _json(503, {"error": "the server is still starting; try again"})
    registry = ModelRegistry(redis, _prefix(request))
    try:
        state = await registry.state()
        if version not in state.versions:
            return _field_error("version", f"v{version} is not kept; kept versions: "
                                           f"{state.versions}")
        newer = state.current is None or version > state.current
        old = await registry.pin(version, who=_who(request, body),
                                 reason=str(body.get("reason") or ""),
                                 action="rollforward" if newer else "rollback")
    except NotKept:
        return _field_error("version", f"v{version} is no longer kept")
    except Exception as exc:
        return _unavailable(exc)
    log.warning("admin: serving pinned to v%s (was v%s) by %s", version, old,
                _who(request, body))
    return _json(200, {"from": old, "to": version, "pinned": version})


@require_admin
async def unpin_endpoint(request: Request) -> Response:
    """``POST /admin/unpin``: follow the newest version again."""
    body = await _body(request)
    if isinstance(body, Response):
        return body
    redis = _redis(request)
    if redis is None:
        return _json(503, {"error": "the server is still starting; try again"})
    try:
        moved = await ModelRegistry(redis, _prefix(request)).unpin(
            who=_who(request, body), reason=str(body.get("reason") or ""))
    except Exception as exc:
        return _unavailable(exc)
    if moved is None:
        return _json(200, {"from": None, "to": None, "pinned": None, "changed": False})
    log.warning("admin: serving unpinned (v%s -> v%s) by %s", *moved, _who(request, body))
    return _json(200, {"from": moved[0], "to": moved[1], "pinned": None, "changed": True})


def admin_routes(wrap: Callable[[str, Handler], Handler] = lambda _, h: h) -> list[BaseRoute]:
    """``POST /admin/rollback`` and ``POST /admin/unpin`` (``wrap`` adds e.g. counting)."""
    return [Route("/admin/rollback", wrap("/admin/rollback", rollback_endpoint), methods=["POST"]),
            Route("/admin/unpin", wrap("/admin/unpin", unpin_endpoint), methods=["POST"])]
