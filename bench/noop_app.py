"""The HTTP reference: a no-op ``POST /rank`` on the scorer's own server stack.

Starlette behind uvicorn, started with the very settings ``streamrank serve`` uses
(``ops/cli_serve.py``: lifespan on, no access log, log level info, uvicorn's default event
loop and HTTP parser). The handler reads the whole body and answers a constant ``{}``:
what is left is the cost of the stack itself, which the scorer cannot beat.

    python -m bench.noop_app --port 8099
"""

from __future__ import annotations

import argparse
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["create_app", "main"]


async def _rank(request: Request) -> Response:
    await request.body()
    return Response(b"{}", media_type="application/json")


async def _healthz(request: Request) -> Response:
    return Response(b'{"status": "ok"}', media_type="application/json")


def create_app() -> Starlette:
    """The no-op app: ``POST /rank`` and ``GET /healthz``."""
    return Starlette(routes=[Route("/rank", _rank, methods=["POST"]),
                             Route("/healthz", _healthz, methods=["GET"])])


def main(argv: list[str] | None = None) -> int:
    """Serve the no-op app on 127.0.0.1 until interrupted."""
    import uvicorn

    p = argparse.ArgumentParser(prog="python -m bench.noop_app")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args(argv)
    uvicorn.run(create_app(), host=args.host, port=args.port, log_level="info", lifespan="on",
                access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
