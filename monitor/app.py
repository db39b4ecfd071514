"""``streamrank dashboard`` as an ASGI app: the dashboard, the rollback API and the
monitor's ``/metrics``, without the scorer (for operators who run it apart).

>>> from ops.settings import ScorerSettings
>>> app = create_dashboard_app(ScorerSettings(_env_file=None))
>>> sorted(r.path for r in app.routes if hasattr(r, "methods"))[:3]
['/', '/admin/rollback', '/admin/unpin']
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from monitor.dashboard import MonitorFeed, admin_routes, dashboard_routes
from monitor.prometheus import MonitorCollector
from ops.security import redis_options
from ops.settings import ScorerSettings

__all__ = ["create_dashboard_app"]


def create_dashboard_app(settings: ScorerSettings) -> Starlette:
    """The dashboard's app, reading the deployment named by ``settings``."""
    registry = CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=5.0,
                                        socket_connect_timeout=1.0, **redis_options(settings))
        app.state.monitor_redis = redis
        app.state.monitor = MonitorFeed(redis, settings.redis_prefix)
        try:
            async with app.state.monitor.running():
                yield
        finally:
            await redis.aclose()

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app = Starlette(routes=[
        Route("/", lambda r: RedirectResponse("/dashboard"), methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *dashboard_routes(), *admin_routes()], lifespan=lifespan)
    app.state.settings = settings
    registry.register(MonitorCollector(lambda: getattr(app.state, "monitor", None)))
    return app
