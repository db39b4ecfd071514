"""``POST /features``: the features the scorer computes for a request, for inspection.

Takes the body of ``POST /rank`` and answers, for each candidate in the upstream order,
the named feature values and hashed coordinates that the model would score, with the
model version they were computed for. With Redis unreachable they come without the
user's and session's state, and ``"degraded": true``. Operators use it to see why a list
came out as it did; the parity test uses it to check that the scorer and the worker compute the same
features for the same list. It changes nothing and logs nothing.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from learner.features import RankContext
from serving.ranking import upstream_order
from serving.schemas import BadRequest, parse_rank_request

__all__ = ["features_endpoint"]


def _json(status: int, body: Any) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def features_endpoint(request: Request) -> Response:
    """Decode a rank request; answer its feature block (404 when no model is loaded)."""
    state = request.app.state
    settings = state.settings
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        return _json(413, {"error": f"body: larger than {settings.max_body_bytes} bytes"})
    try:
        req = parse_rank_request(body, settings.max_candidates)
    except BadRequest as exc:
        return _json(422, exc.to_json())
    model = state.cache.model
    if model is None:
        return _json(404, {"error": "no model loaded yet: features need a snapshot's counters"})
    reader = getattr(state, "reader", None)
    user = session = None
    degraded = False
    if reader is not None:
        try:
            user, session = await reader.load(req.user_id, req.session_id,
                                              [it.item_id for it in req.items])
        except Exception:  # Redis down: the features without state, and say so
            degraded = True
    ups = [req.items[i] for i in upstream_order(req.items)]
    block = model.features(
        RankContext(req.user_id, req.session_id, req.query), [it.item_id for it in ups],
        base_scores=[it.base_score for it in ups],
        request_features=[it.features for it in ups] if any(it.features for it in ups) else None,
        user=user, session=session, items=reader.catalog if reader is not None else None)
    return _json(200, {
        "model_version": model.version, "degraded": degraded, "names": list(block.names),
        "items": [{"item_id": it.item_id, "index": block.index[r].tolist(),
                   "value": block.value[r].tolist()} for r, it in enumerate(ups)]})
