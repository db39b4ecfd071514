"""Security settings: their translation into client options, secrets kept out of repr and
logs, and the admin token guard of the endpoints that change state."""

from __future__ import annotations

import logging
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from starlette.applications import Starlette

from ops.security import (
    SecurityConfigError,
    faust_broker_options,
    kafka_python_options,
    librdkafka_options,
    kafka_ssl_context,
    redis_options,
)
from ops.services import free_port
from ops.settings import ScorerSettings, WorkerSettings
from serving.app import create_app
from tests.scorer_harness import unreachable_settings

SECRETS = {"redis": "r3dis-pa55", "sasl": "sa5l-pa55", "token": "adm1n-t0ken"}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A self-signed certificate and its key (PEM), made with the openssl command."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return {"cert": str(cert), "key": str(key)}


# -- settings ---------------------------------------------------------------------------


def test_security_settings_are_read_from_streamrank_variables(
        monkeypatch: pytest.MonkeyPatch, tls_files: dict[str, str]) -> None:
    env = {"STREAMRANK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
           "STREAMRANK_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
           "STREAMRANK_KAFKA_SASL_USERNAME": "svc",
           "STREAMRANK_KAFKA_SASL_PASSWORD": SECRETS["sasl"],
           "STREAMRANK_KAFKA_SSL_CAFILE": tls_files["cert"],
           "STREAMRANK_REDIS_URL": "rediss://cache:6380/0",
           "STREAMRANK_REDIS_PASSWORD": SECRETS["redis"],
           "STREAMRANK_REDIS_SSL_CA_CERTS": tls_files["cert"],
           "STREAMRANK_ADMIN_TOKEN": SECRETS["token"]}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    s = ScorerSettings()
    assert s.kafka_security_protocol == "SASL_SSL" and s.kafka_sasl_mechanism == "SCRAM-SHA-256"
    assert s.kafka_sasl_password is not None
    assert s.kafka_sasl_password.get_secret_value() == SECRETS["sasl"]
    assert s.admin_token is not None and s.admin_token.get_secret_value() == SECRETS["token"]
    assert WorkerSettings().kafka_security_protocol == "SASL_SSL"  # shared by every service


@pytest.mark.parametrize(("overrides", "names"), [
    ({"kafka_security_protocol": "SASL_SSL"}, "STREAMRANK_KAFKA_SASL_USERNAME"),
    ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_username": "svc"},
     "STREAMRANK_KAFKA_SASL_PASSWORD"),
    ({"kafka_ssl_cafile": "/ca.pem"}, "STREAMRANK_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.pem"},
     "STREAMRANK_KAFKA_SSL_KEYFILE"),
    ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
    ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
    ({"redis_url": "http://cache:6379"}, "STREAMRANK_REDIS_URL"),
    ({"redis_ssl_ca_certs": "/ca.pem"}, "rediss://"),
])
def test_unsafe_or_incomplete_security_settings_fail_naming_the_variable(
        overrides: dict[str, Any], names: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScorerSettings(_env_file=None, **overrides)  # type: ignore[call-arg]
    assert names in str(caught.value)


def test_secrets_never_appear_in_repr_str_or_validation_errors() -> None:
    s = ScorerSettings(_env_file=None, redis_url=f"redis://app:{SECRETS['redis']}@cache:6379/0",
                       kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="svc",
                       kafka_sasl_password=SECRETS["sasl"], admin_token=SECRETS["token"])
    for text in (repr(s), str(s), s.redis_url_masked):
        assert not any(secret in text for secret in SECRETS.values()), text
    assert s.redis_url_masked == "redis://app:***@cache:6379/0"
    # a bad value next to secrets: the error must not echo them
    with pytest.raises(ValidationError) as caught:
        ScorerSettings(_env_file=None, port="eighty",  # type: ignore[call-arg]
                       redis_url=f"redis://:{SECRETS['redis']}@h/0",
                       kafka_security_protocol="SASL_PLAINTEXT",
                       kafka_sasl_password=SECRETS["sasl"])
    assert not any(secret in str(caught.value) for secret in SECRETS.values())


# -- translation into client options ---------------------------------------------------


def test_plaintext_and_a_plain_redis_url_add_no_options() -> None:
    s = unreachable_settings()
    assert kafka_python_options(s) == {} and faust_broker_options(s) == {}
    assert redis_options(s) == {}


def test_sasl_over_tls_for_kafka_python(tls_files: dict[str, str]) -> None:
    s = unreachable_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                  kafka_sasl_username="svc", kafka_sasl_password=SECRETS["sasl"],
                  kafka_ssl_cafile=tls_files["cert"], kafka_ssl_certfile=tls_files["cert"],
                  kafka_ssl_keyfile=tls_files["key"])
    assert kafka_python_options(s) == {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc", "sasl_plain_password": SECRETS["sasl"],
        "ssl_check_hostname": True, "ssl_cafile": tls_files["cert"],
        "ssl_certfile": tls_files["cert"], "ssl_keyfile": tls_files["key"]}


def test_sasl_over_tls_for_librdkafka_is_accepted_by_its_producer(
        tls_files: dict[str, str]) -> None:
    """librdkafka refuses unknown or malformed settings when the producer is made (no broker
    needed: it connects in the background)."""
    from confluent_kafka import KafkaException, Producer

    s = unreachable_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                  kafka_sasl_username="svc", kafka_sasl_password=SECRETS["sasl"],
                  kafka_ssl_cafile=tls_files["cert"], kafka_ssl_certfile=tls_files["cert"],
                  kafka_ssl_keyfile=tls_files["key"])
    options = librdkafka_options(s)
    assert options == {
        "security.protocol": "SASL_SSL", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "svc", "sasl.password": SECRETS["sasl"],
        "ssl.endpoint.identification.algorithm": "https", "ssl.ca.location": tls_files["cert"],
        "ssl.certificate.location": tls_files["cert"], "ssl.key.location": tls_files["key"]}
    assert librdkafka_options(unreachable_settings()) == {}
    Producer({"bootstrap.servers": s.kafka_bootstrap_servers, **options})  # raises if refused
    with pytest.raises(KafkaException):  # which it does, for a misspelt one
        Producer({"bootstrap.servers": s.kafka_bootstrap_servers, "sasl.usrname": "svc"})


def test_the_kafka_python_options_are_known_to_each_of_its_clients(
        tls_files: dict[str, str]) -> None:
    """kafka-python refuses unknown option names; none of ours may be one (no broker needed)."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    s = unreachable_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc",
                  kafka_sasl_password=SECRETS["sasl"], kafka_ssl_cafile=tls_files["cert"],
                  kafka_ssl_certfile=tls_files["cert"], kafka_ssl_keyfile=tls_files["key"])
    options = kafka_python_options(s)
    for client in (KafkaProducer, KafkaConsumer, KafkaAdminClient):
        assert set(options) <= set(client.DEFAULT_CONFIG), (client, set(options) - set(
            client.DEFAULT_CONFIG))


def test_faust_credentials_for_each_protocol(tls_files: dict[str, str]) -> None:
    import faust
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    sasl = faust_broker_options(unreachable_settings(
        kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc", kafka_sasl_password=SECRETS["sasl"]))["broker_credentials"]
    assert isinstance(sasl, faust.SASLCredentials) and SECRETS["sasl"] not in repr(sasl)
    auth = credentials_to_aiokafka_auth(sasl)  # what faust hands to aiokafka
    assert auth == {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256",
                    "sasl_plain_username": "svc", "sasl_plain_password": SECRETS["sasl"],
                    "ssl_context": None}

    sasl_ssl = faust_broker_options(unreachable_settings(
        kafka_security_protocol="SASL_SSL", kafka_sasl_username="svc",
        kafka_sasl_password=SECRETS["sasl"], kafka_ssl_cafile=tls_files["cert"]))
    auth = credentials_to_aiokafka_auth(sasl_ssl["broker_credentials"])
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == "PLAIN"
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert auth["ssl_context"].verify_mode == ssl.CERT_REQUIRED

    tls = faust_broker_options(unreachable_settings(
        kafka_security_protocol="SSL", kafka_ssl_cafile=tls_files["cert"],
        kafka_ssl_certfile=tls_files["cert"], kafka_ssl_keyfile=tls_files["key"]))
    auth = credentials_to_aiokafka_auth(tls["broker_credentials"])
    assert auth["security_protocol"] == "SSL" and auth["ssl_context"].check_hostname

    # the options are accepted by faust.App as they are
    app = faust.App("unit-security", broker="kafka://127.0.0.1:1", web_enabled=False,
                    **sasl_ssl)
    assert app.conf.broker_credentials is sasl_ssl["broker_credentials"]


def test_unreadable_or_invalid_tls_files_fail_naming_the_variable(tmp_path: Path) -> None:
    s = unreachable_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(tmp_path / "nope.pem"))
    with pytest.raises(SecurityConfigError, match="STREAMRANK_KAFKA_SSL_CAFILE"):
        kafka_python_options(s)
    with pytest.raises(SecurityConfigError, match="STREAMRANK_KAFKA_SSL_CAFILE"):
        faust_broker_options(s)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(SecurityConfigError, match="PEM"):
        kafka_ssl_context(unreachable_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(junk)))
    with pytest.raises(SecurityConfigError, match="STREAMRANK_REDIS_SSL_CA_CERTS"):
        redis_options(unreachable_settings(redis_url="rediss://cache:6380/0",
                                redis_ssl_ca_certs=str(tmp_path / "nope.pem")))
    with pytest.raises(SecurityConfigError, match="STREAMRANK_KAFKA_SSL_CAFILE"):
        create_app(s)  # the scorer refuses to start, rather than fail at the first send


def test_redis_password_and_tls_options(tls_files: dict[str, str]) -> None:
    s = unreachable_settings(redis_url="rediss://cache:6380/0", redis_password=SECRETS["redis"],
                  redis_ssl_ca_certs=tls_files["cert"])
    assert redis_options(s) == {"password": SECRETS["redis"], "ssl_ca_certs": tls_files["cert"]}
    # the URL's own password wins
    s = unreachable_settings(redis_url="redis://:inurl@cache:6379/0", redis_password=SECRETS["redis"])
    assert redis_options(s) == {}
    import redis

    client = redis.Redis.from_url("rediss://cache:6380/0", **redis_options(unreachable_settings(
        redis_url="rediss://cache:6380/0", redis_password="x",
        redis_ssl_ca_certs=tls_files["cert"])))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "x" and kwargs["ssl_ca_certs"] == tls_files["cert"]
    client.close()


# -- secrets stay out of the scorer's logs ---------------------------------------------


@asynccontextmanager
async def _serve(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://scorer") as client:
        yield client


@pytest.mark.asyncio
async def test_the_scorer_logs_no_secret_even_when_everything_fails(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    s = unreachable_settings(redis_url=f"redis://app:{SECRETS['redis']}@127.0.0.1:{free_port()}/0",
                  kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_username="svc",
                  kafka_sasl_password=SECRETS["sasl"], admin_token=SECRETS["token"])
    async with _serve(create_app(s)) as client:
        r = await client.post("/rank", json={"user_id": "u", "items": [{"item_id": "a"}]})
        assert r.status_code == 200 and r.json()["degraded"] is True
        await client.post("/admin/reload", headers={"Authorization": "Bearer wrong"})
        await client.post("/admin/reload",
                          headers={"Authorization": f"Bearer {SECRETS['token']}"})
        text = (await client.get("/metrics")).text + (await client.get("/healthz")).text
    logged = caplog.text + text
    assert "redis://app:***@127.0.0.1" in caplog.text  # the startup line, masked
    assert not any(secret in logged for secret in SECRETS.values())


# -- the admin guard --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_admin_endpoints_are_off_without_a_configured_token() -> None:
    async with _serve(create_app(unreachable_settings())) as client:
        r = await client.post("/admin/reload", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403
        assert r.json()["error"] == ("admin endpoints are disabled: "
                                     "set STREAMRANK_ADMIN_TOKEN to enable")


@pytest.mark.parametrize(("header", "status"), [
    (None, 401), ("", 401), ("Bearer", 401), ("Basic YWRtaW46eA==", 401),
    ("Bearer wrong-token", 403), (f"Bearer {SECRETS['token']}x", 403),
    (f"Bearer {SECRETS['token'][:-1]}", 403),
])
@pytest.mark.asyncio
async def test_admin_reload_needs_the_bearer_token(header: str | None, status: int) -> None:
    async with _serve(create_app(unreachable_settings(admin_token=SECRETS["token"]))) as client:
        headers = {} if header is None else {"Authorization": header}
        r = await client.post("/admin/reload", headers=headers)
        assert r.status_code == status, r.text
        assert r.json()["error"].startswith("authorization:")
        if status == 401:
            assert r.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/admin/reload")).status_code == 405


@pytest.mark.asyncio
async def test_admin_reload_with_the_token_reaches_redis() -> None:
    async with _serve(create_app(unreachable_settings(admin_token=SECRETS["token"]))) as client:
        for scheme in ("Bearer", "bearer"):
            r = await client.post("/admin/reload",
                                  headers={"Authorization": f"{scheme} {SECRETS['token']}"})
            # authorised; Redis is down in this test, so the reload itself cannot happen
            assert r.status_code == 503, r.text
            assert r.json()["error"].startswith("redis:")
            assert "is kept" in r.json()["error"]
