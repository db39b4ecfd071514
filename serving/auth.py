"""The guard of the endpoints that change state: a bearer token, compared in constant time.

Wrap a handler with :func:`require_admin` and it runs only for a request that carries
``Authorization: Bearer <STREAMRANK_ADMIN_TOKEN>``:

* no token configured: ``403`` ("set STREAMRANK_ADMIN_TOKEN to enable"), so admin
  endpoints are off unless an operator turns them on;
* no ``Authorization: Bearer`` header: ``401`` with ``WWW-Authenticate: Bearer``;
* a wrong token: ``403``.

The token is read from ``request.app.state.settings.admin_token`` (a ``SecretStr``) and
never logged. ``POST /admin/reload`` uses it; later admin endpoints (rollback) use the same.

Examples
--------
>>> from pydantic import SecretStr
>>> check_admin_token("Bearer s3cret", SecretStr("s3cret")) is None
True
>>> check_admin_token("Bearer nope", SecretStr("s3cret"))
(403, 'authorization: wrong admin token')
>>> check_admin_token(None, SecretStr("s3cret"))[0]
401
>>> check_admin_token("Bearer s3cret", None)
(403, 'admin endpoints are disabled: set STREAMRANK_ADMIN_TOKEN to enable')
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable

import orjson
from pydantic import SecretStr
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["check_admin_token", "require_admin"]

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]

DISABLED = "admin endpoints are disabled: set STREAMRANK_ADMIN_TOKEN to enable"
MISSING = ("authorization: send the header 'Authorization: Bearer <token>' "
           "with the value of STREAMRANK_ADMIN_TOKEN")
WRONG = "authorization: wrong admin token"


def check_admin_token(authorization: str | None,
                      token: SecretStr | None) -> tuple[int, str] | None:
    """``None`` when ``authorization`` (the header's value) carries ``token``; else the
    status and error message of the refusal."""
    if token is None or not token.get_secret_value():
        return 403, DISABLED
    scheme, _, given = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return 401, MISSING
    # constant time: the comparison takes as long however many leading bytes match
    if not hmac.compare_digest(given.strip().encode("utf-8"),
                               token.get_secret_value().encode("utf-8")):
        return 403, WRONG
    return None


def require_admin(handler: Handler) -> Handler:
    """Run ``handler`` only for requests that carry the admin token (see the module doc)."""

    @functools.wraps(handler)
    async def guarded(request: Request) -> Response:
        token: SecretStr | None = getattr(request.app.state.settings, "admin_token", None)
        refused = check_admin_token(request.headers.get("authorization"), token)
        if refused is None:
            return await handler(request)
        status, error = refused
        client = request.client.host if request.client else "?"
        log.warning("refused %s %s from %s: %s", request.method, request.url.path, client,
                    error)
        headers = {"WWW-Authenticate": 'Bearer realm="streamrank"'} if status == 401 else None
        return Response(orjson.dumps({"error": error}), status_code=status,
                        media_type="application/json", headers=headers)

    return guarded
