"""The HTTP API fuzzed from its own OpenAPI description (schemathesis), in process (ASGI).

Schemathesis reads ``GET /openapi.json``, generates valid and invalid requests for every
operation in it (``POST /rank``, ``GET /healthz``, ``/model``, ``/metrics``,
``/openapi.json``, ``POST /admin/reload``) and checks each answer: never a 5xx, a status
code and content type the description lists, and a body that follows the documented
schema. Redis and Kafka are closed ports here, so every answer is the degraded one; a
bounded number of examples per operation (``MAX_EXAMPLES``) keeps it to seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ops.services import free_port
from ops.settings import ScorerSettings
from serving.app import create_app

MAX_EXAMPLES = 200
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


APP = create_app(ScorerSettings(
    _env_file=None,  # type: ignore[call-arg]
    redis_url=f"redis://127.0.0.1:{free_port()}/0",
    kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", topic_prefix="fuzz.",
    refresh_interval_ms=3_600_000, max_candidates=50, impression_buffer=100,
    admin_token="fuzz-token"))
# The bytes GET /openapi.json serves (built with the app, no lifespan needed). Loaded here
# rather than with schemathesis.pytest.from_fixture, which breaks on pytest 9 (it sets
# the removed Node._nodeid); schemathesis starts the app's lifespan at the first call.
schema = schemathesis.openapi.from_dict(orjson.loads(APP.state.openapi))
schema.app = APP


@pytest.fixture(scope="module", autouse=True)
def _stop_the_app() -> Iterator[None]:
    """Stop the app's lifespan (its background thread and tasks) after this module."""
    yield
    asgi.shutdown_lifespans()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_5xx_and_every_answer_follows_the_description(
        case: schemathesis.Case) -> None:
    case.call_and_validate(checks=CHECKS)
