"""Security against a real Redis: AUTH end to end, and snapshots the scorer must refuse.

Each test runs a ``LocalRedis`` of its own that requires a password (``--requirepass``).
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from learner.snapshot import MAGIC, encode
from ops.redis_server import LocalRedis
from ops.services import free_port
from ops.settings import ScorerSettings
from tests.helpers import wait_for
from tests.leaks import no_leaked_sockets
from tests.scorer_harness import InProcessScorer, minimal_snapshot, running_scorer

pytestmark = pytest.mark.integration

__all__ = ["no_leaked_sockets"]  # an autouse fixture: kafka-python leaks sockets

PASSWORD = "s3cret-redis-pa55"
TOKEN = "s3cret-admin-t0ken"


@pytest.fixture
def auth_redis(tmp_path: Path) -> Iterator[LocalRedis]:
    with LocalRedis(port=free_port(), data_dir=tmp_path / "redis", password=PASSWORD) as server:
        yield server


def _settings(server: LocalRedis, topic_prefix: str, **overrides: Any) -> ScorerSettings:
    values: dict[str, Any] = {
        # the password comes separately (STREAMRANK_REDIS_PASSWORD), not in the URL
        "redis_url": f"redis://127.0.0.1:{server.port}/0", "redis_password": PASSWORD,
        "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}", "topic_prefix": topic_prefix,
        "redis_prefix": topic_prefix.rstrip(".") + ":", "refresh_interval_ms": 20,
        "admin_token": TOKEN, **overrides}
    return ScorerSettings(_env_file=None, **values)  # type: ignore[call-arg]


def _serve_v(scorer: InProcessScorer, version: int) -> None:
    wait_for(lambda: scorer.rank()["model_version"] == f"v{version}", timeout=10,
             message=f"the scorer to serve v{version}")


def _plant(server: LocalRedis, settings: ScorerSettings, blob: bytes) -> int:
    """Put ``blob`` where a publisher puts a new version, and make it current."""
    prefix = settings.redis_prefix
    r = redis.Redis.from_url(server.url)
    try:
        version = int(r.incr(f"{prefix}snapshot:seq"))
        r.set(f"{prefix}snapshot:v:{version}", blob)
        r.zadd(f"{prefix}snapshot:versions", {str(version): version})
        r.set(f"{prefix}snapshot:current", version)
    finally:
        r.close()
    return version


def test_redis_auth_end_to_end(auth_redis: LocalRedis, topic_prefix: str,
                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    anonymous = redis.Redis(port=auth_redis.port)
    with pytest.raises(redis.AuthenticationError):  # the server really requires the password
        anonymous.ping()
    anonymous.close()

    with running_scorer(_settings(auth_redis, topic_prefix)) as scorer:
        version = scorer.publish()
        _serve_v(scorer, version)
        assert scorer.rank()["degraded"] is False
    # the password in the URL works the same
    with running_scorer(_settings(auth_redis, topic_prefix, redis_url=auth_redis.url,
                                  redis_password=None)) as scorer:
        _serve_v(scorer, version)
    # a wrong password: degraded answers, never an error, and the reason is visible
    with running_scorer(_settings(auth_redis, topic_prefix,
                                  redis_password="wrong-pa55")) as scorer:
        body = scorer.rank()
        assert body["degraded"] is True and body["model_version"] is None
        assert scorer.request("GET", "/healthz").json()["redis_ok"] is False
        assert scorer.app.state.cache.last_error.startswith("redis: AuthenticationError")
    assert PASSWORD not in caplog.text and "wrong-pa55" not in caplog.text
    assert "redis://127.0.0.1" in caplog.text


def test_a_tampered_snapshot_is_refused_and_the_previous_model_kept(
        auth_redis: LocalRedis, topic_prefix: str) -> None:
    settings = _settings(auth_redis, topic_prefix)
    with running_scorer(settings) as scorer:
        good = scorer.publish()
        _serve_v(scorer, good)
        errors = scorer.metric("streamrank_snapshot_errors_total")

        blob = bytearray(encode(minimal_snapshot(version=good + 1)))
        blob[-1] ^= 0x01  # one bit of the weights, header intact: only the checksum can tell
        bad = _plant(auth_redis, settings, bytes(blob))
        assert bad == good + 1
        wait_for(lambda: scorer.metric("streamrank_snapshot_errors_total") > errors,
                 timeout=10, message="the scorer to refuse the tampered snapshot")
        assert "checksum mismatch" in scorer.app.state.cache.last_error
        body = scorer.rank()
        assert body["model_version"] == f"v{good}" and body["degraded"] is False

        # an operator's forced reload does not get past the checksum either
        r = scorer.request("POST", "/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200, r.text
        assert r.json()["reloaded"] is False and "checksum mismatch" in r.json()["error"]
        assert r.json()["model_version"] == f"v{good}"


def test_pickles_and_object_arrays_are_never_loaded(auth_redis: LocalRedis, topic_prefix: str,
                                                   tmp_path: Path) -> None:
    settings = _settings(auth_redis, topic_prefix)
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    # the snapshot format's own header, but an object array (what np.load would unpickle)
    header = orjson.dumps({"version": 99, "created_ms": 0, "examples": 0, "meta": {},
                           "checksum": "", "arrays": [{"name": "w", "dtype": "|O",
                                                       "shape": [1], "offset": 0,
                                                       "nbytes": 8}]})
    object_array = MAGIC + struct.pack("<I", len(header)) + header + b"\0" * 8
    with running_scorer(settings) as scorer:
        good = scorer.publish()
        _serve_v(scorer, good)
        for blob, reason in ((pickle.dumps(Exploit()), "bad magic"),
                             (MAGIC + pickle.dumps(Exploit()), "snapshot"),
                             (object_array, "is not allowed")):
            errors = scorer.metric("streamrank_snapshot_errors_total")
            _plant(auth_redis, settings, blob)
            wait_for(lambda: scorer.metric("streamrank_snapshot_errors_total") > errors,
                     timeout=10, message=f"the scorer to refuse {blob[:12]!r}")
            assert reason in scorer.app.state.cache.last_error
            assert scorer.rank()["model_version"] == f"v{good}"
    assert not marker.exists()
