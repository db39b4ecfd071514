"""Turn the security settings into client options: one place for Kafka and Redis.

:class:`~ops.settings.CommonSettings` holds the ``STREAMRANK_`` security variables;
each function here translates them for one kind of client, so every client of a
deployment (the producer SDK, the topic admin, the scorer's impression logger, the
Faust worker, every Redis client) connects the same way:

* :func:`kafka_python_options`: keyword arguments of kafka-python's ``KafkaProducer``,
  ``KafkaConsumer`` and ``KafkaAdminClient``.
* :func:`librdkafka_options`: settings of librdkafka's producer (``confluent_kafka``), by
  their dotted names: the scorer's impression logger.
* :func:`faust_broker_options`: keyword arguments of ``faust.App`` (``broker_credentials``).
* :func:`aiokafka_options`: keyword arguments of ``aiokafka.AIOKafkaConsumer`` (the
  learner's consumer of the examples topic).
* :func:`redis_options`: keyword arguments of ``redis.Redis.from_url`` (sync or asyncio).

PLAINTEXT Kafka and a plain ``redis://`` URL give empty dicts, so the clients keep their
own defaults. A file that is named but cannot be read fails here, naming its variable,
instead of as a TLS handshake error at the first connection.

Examples
--------
>>> from ops.settings import ScorerSettings
>>> plain = ScorerSettings(_env_file=None)
>>> kafka_python_options(plain), redis_options(plain)
({}, {})
>>> sasl = ScorerSettings(_env_file=None, kafka_security_protocol="SASL_PLAINTEXT",
...                       kafka_sasl_mechanism="SCRAM-SHA-512",
...                       kafka_sasl_username="svc", kafka_sasl_password="pa55")
>>> options = kafka_python_options(sasl)
>>> options["security_protocol"], options["sasl_mechanism"], options["sasl_plain_username"]
('SASL_PLAINTEXT', 'SCRAM-SHA-512', 'svc')
>>> redis_options(ScorerSettings(_env_file=None, redis_password="hunter2"))
{'password': 'hunter2'}
"""

from __future__ import annotations

import os
import ssl
from typing import Any
from urllib.parse import urlsplit

from ops.settings import CommonSettings

__all__ = [
    "SecurityConfigError",
    "aiokafka_options",
    "faust_broker_options",
    "kafka_python_options",
    "kafka_ssl_context",
    "librdkafka_options",
    "redis_options",
]


class SecurityConfigError(ValueError):
    """A security setting names something unusable (an unreadable certificate file, ...)."""


def _readable(path: str | None, variable: str) -> str | None:
    if path is None:
        return None
    if not os.access(path, os.R_OK):
        raise SecurityConfigError(f"{variable}={path}: no such readable file; point it at the "
                                  "PEM file, or unset it")
    return path


def _kafka_files(settings: CommonSettings) -> tuple[str | None, str | None, str | None]:
    return (_readable(settings.kafka_ssl_cafile, "STREAMRANK_KAFKA_SSL_CAFILE"),
            _readable(settings.kafka_ssl_certfile, "STREAMRANK_KAFKA_SSL_CERTFILE"),
            _readable(settings.kafka_ssl_keyfile, "STREAMRANK_KAFKA_SSL_KEYFILE"))


#: One client's names for the security settings, in the order: protocol, SASL mechanism,
#: user, password, CA file, certificate file, key file.
_KAFKA_PYTHON_NAMES = ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                       "sasl_plain_password", "ssl_cafile", "ssl_certfile", "ssl_keyfile")
_LIBRDKAFKA_NAMES = ("security.protocol", "sasl.mechanism", "sasl.username", "sasl.password",
                     "ssl.ca.location", "ssl.certificate.location", "ssl.key.location")


def _kafka_security(settings: CommonSettings, names: tuple[str, ...],
                    verify_host: tuple[str, Any]) -> dict[str, Any]:
    """The Kafka security settings under one client's ``names``; ``verify_host`` is the
    setting and value that make it check the broker's host name under TLS."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    key_protocol, key_mechanism, key_user, key_password, *key_files = names
    options: dict[str, Any] = {key_protocol: protocol}
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings validator checks it
        options.update({key_mechanism: settings.kafka_sasl_mechanism,
                        key_user: settings.kafka_sasl_username,
                        key_password: settings.kafka_sasl_password.get_secret_value()})
    if protocol.endswith("SSL"):
        options[verify_host[0]] = verify_host[1]
        for key, value in zip(key_files, _kafka_files(settings)):
            if value is not None:
                options[key] = value
    return options


def kafka_python_options(settings: CommonSettings) -> dict[str, Any]:
    """Security options of kafka-python clients (``KafkaProducer(**options)``, ...).

    Returns ``{}`` for PLAINTEXT. The SASL password is in the dict in clear (the client
    needs it): never log the dict.
    """
    return _kafka_security(settings, _KAFKA_PYTHON_NAMES, ("ssl_check_hostname", True))


def librdkafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Security settings of librdkafka clients (``confluent_kafka.Producer({...})``): the
    same settings as :func:`kafka_python_options` under librdkafka's names.

    >>> from ops.settings import ScorerSettings
    >>> librdkafka_options(ScorerSettings(_env_file=None, kafka_security_protocol="SASL_PLAINTEXT",
    ...                                   kafka_sasl_username="svc", kafka_sasl_password="pa55"))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'security.protocol': 'SASL_PLAINTEXT', 'sasl.mechanism': 'PLAIN', 'sasl.username': 'svc',
     'sasl.password': 'pa55'}
    """
    return _kafka_security(settings, _LIBRDKAFKA_NAMES,
                           ("ssl.endpoint.identification.algorithm", "https"))


def kafka_ssl_context(settings: CommonSettings) -> ssl.SSLContext:
    """A client TLS context for Kafka: verifies the broker (the CA file, else the system's
    CAs) and presents the client certificate when one is configured."""
    cafile, certfile, keyfile = _kafka_files(settings)
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=cafile)
        if certfile is not None:
            context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise SecurityConfigError(
            f"cannot load the Kafka TLS files (STREAMRANK_KAFKA_SSL_CAFILE, _CERTFILE, "
            f"_KEYFILE): {exc}; they must be PEM") from None
    return context


def faust_broker_options(settings: CommonSettings) -> dict[str, Any]:
    """Security options of ``faust.App(...)``: ``{"broker_credentials": ...}``, or ``{}``.

    Imports faust only when it is called (the scorer never does).
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    import faust

    context = kafka_ssl_context(settings) if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return {"broker_credentials": faust.SSLCredentials(context)}
    assert settings.kafka_sasl_password is not None  # the settings validator checks it
    return {"broker_credentials": faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism, ssl_context=context)}


def aiokafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Security options of aiokafka clients (``AIOKafkaConsumer(**options)``: the
    learner's own consumer of the examples topic). Returns ``{}`` for PLAINTEXT.

    >>> from ops.settings import WorkerSettings
    >>> sasl = WorkerSettings(_env_file=None, kafka_security_protocol="SASL_PLAINTEXT",
    ...                       kafka_sasl_username="svc", kafka_sasl_password="pa55")
    >>> sorted(aiokafka_options(sasl))
    ['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
    """
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        options["ssl_context"] = kafka_ssl_context(settings)
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None  # the settings validator checks it
        options.update(sasl_mechanism=settings.kafka_sasl_mechanism,
                       sasl_plain_username=settings.kafka_sasl_username,
                       sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    return options


def redis_options(settings: CommonSettings) -> dict[str, Any]:
    """Security options of ``redis.Redis.from_url(settings.redis_url, **options)``.

    The URL carries the scheme (``rediss://`` is TLS) and may carry the password;
    ``STREAMRANK_REDIS_PASSWORD`` is used only when the URL has none.
    """
    options: dict[str, Any] = {}
    if settings.redis_password is not None and urlsplit(settings.redis_url).password is None:
        options["password"] = settings.redis_password.get_secret_value()
    if settings.redis_ssl_ca_certs:
        options["ssl_ca_certs"] = _readable(settings.redis_ssl_ca_certs,
                                            "STREAMRANK_REDIS_SSL_CA_CERTS")
    return options
