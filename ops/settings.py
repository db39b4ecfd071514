"""Typed configuration, read once from ``STREAMRANK_`` environment variables.

One settings class per service; each inherits the connection settings that every
service shares. A bad value fails loudly with the variable's name.

Examples
--------
>>> import os
>>> s = ScorerSettings(_env_file=None, topic_prefix="t.")
>>> s.topic_prefix, s.kafka_bootstrap_servers
('t.', 'localhost:9092')
>>> ScorerSettings(port="eighty")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ScorerSettings
port
...

Secrets hide themselves: a password in the Redis URL, the SASL password and the admin
token never appear in ``repr`` (nor in log lines, which use ``redis_url_masked``):

>>> s = ScorerSettings(_env_file=None, redis_url="redis://:hunter2@cache:6379/0",
...                    admin_token="s3cret", kafka_security_protocol="SASL_SSL",
...                    kafka_sasl_username="svc", kafka_sasl_password="pa55")
>>> any(secret in repr(s) for secret in ("hunter2", "s3cret", "pa55"))
False
>>> s.redis_url_masked
'redis://:***@cache:6379/0'
>>> ScorerSettings(_env_file=None, kafka_security_protocol="SASL_PLAINTEXT")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for ScorerSettings
  Value error, STREAMRANK_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT needs STREAMRANK_KAFKA_SASL_USERNAME and STREAMRANK_KAFKA_SASL_PASSWORD; set both...
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings", "ScorerSettings", "WorkerSettings", "mask_url"]

KafkaSecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
KafkaSaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def mask_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``, for log lines.

    >>> mask_url("rediss://app:hunter2@cache:6380/1")
    'rediss://app:***@cache:6380/1'
    >>> mask_url("redis://localhost:6379/0")
    'redis://localhost:6379/0'
    """
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        user = parts.username or ""
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # not a URL at all: say nothing of it
        return "<unparsable url>"


class CommonSettings(BaseSettings):
    """Connection settings shared by every streamrank service."""

    # hide_input_in_errors: a validation error must not print a password it was given
    model_config = SettingsConfigDict(env_prefix="STREAMRANK_", extra="ignore",
                                      hide_input_in_errors=True)

    kafka_bootstrap_servers: str = "localhost:9092"
    #: ``redis://[[user]:password@]host:port/db``, or ``rediss://`` for TLS. It may carry
    #: a password, so it is left out of ``repr``; log :attr:`redis_url_masked` instead.
    redis_url: str = Field(default="redis://localhost:6379/0", repr=False)
    topic_prefix: str = "streamrank."
    #: Namespace of every Redis key this deployment writes (snapshots, history, catalog).
    redis_prefix: str = "streamrank:"
    #: Log2 of the hashed sparse weight space (2**bits coordinates).
    hash_bits: int = Field(default=20, ge=8, le=28)

    # -- security (ops/security.py turns these into client options) ------------------------
    #: Redis AUTH password when it is not in the URL (the URL's wins if both are set).
    redis_password: SecretStr | None = None
    #: CA bundle to verify the Redis server's certificate (``rediss://`` URLs only).
    redis_ssl_ca_certs: str | None = None
    #: How clients talk to Kafka: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    kafka_security_protocol: KafkaSecurityProtocol = "PLAINTEXT"
    #: SASL mechanism (``SASL_*`` protocols): PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    kafka_sasl_mechanism: KafkaSaslMechanism = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    #: PEM files for TLS to Kafka (``SSL`` and ``SASL_SSL``): CA bundle, client cert and key.
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None

    @model_validator(mode="after")
    def _check_security(self) -> CommonSettings:
        """Refuse combinations that would silently connect without the intended security."""
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (self.kafka_sasl_username
                                                 and self.kafka_sasl_password):
            raise ValueError(
                f"STREAMRANK_KAFKA_SECURITY_PROTOCOL={protocol} needs "
                "STREAMRANK_KAFKA_SASL_USERNAME and STREAMRANK_KAFKA_SASL_PASSWORD; set both")
        tls_files = [name for name in ("cafile", "certfile", "keyfile")
                     if getattr(self, f"kafka_ssl_{name}")]
        if tls_files and protocol not in ("SSL", "SASL_SSL"):
            raise ValueError(
                f"STREAMRANK_KAFKA_SSL_{tls_files[0].upper()} is set but "
                f"STREAMRANK_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS; "
                "set it to SSL or SASL_SSL")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("STREAMRANK_KAFKA_SSL_CERTFILE and STREAMRANK_KAFKA_SSL_KEYFILE "
                             "go together (a client certificate needs its key); set both")
        scheme = urlsplit(self.redis_url).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"STREAMRANK_REDIS_URL must start with redis://, rediss:// (TLS) "
                             f"or unix://, not {scheme + '://' if scheme else 'nothing'}")
        if self.redis_ssl_ca_certs and scheme != "rediss":
            raise ValueError("STREAMRANK_REDIS_SSL_CA_CERTS is set but STREAMRANK_REDIS_URL "
                             "is not rediss://; use rediss:// for TLS to Redis")
        return self

    @property
    def redis_url_masked(self) -> str:
        """:attr:`redis_url` with its password replaced by ``***`` (for log lines)."""
        return mask_url(self.redis_url)


class WorkerSettings(CommonSettings):
    """Settings of ``streamrank worker`` (the Faust stream processors and learner)."""

    #: Consumer group and changelog-topic namespace; empty means ``{topic_prefix}worker``.
    app_id: str = ""
    #: Partitions of the event topics when the worker creates them.
    topic_partitions: int = Field(default=4, ge=1)
    #: Replication factor of the topics the worker creates (3 in production).
    topic_replication_factor: int = Field(default=1, ge=1)
    #: Publish a snapshot at most this often, when there were updates.
    snapshot_interval_ms: int = Field(default=500, ge=10)
    #: How many snapshot versions Redis keeps.
    snapshot_keep: int = Field(default=5, ge=1)
    #: Interactions kept in each user's and session's recent history.
    history_length: int = Field(default=50, ge=1)
    #: How long an impression waits in the join table for its clicks.
    impression_ttl_s: float = Field(default=3600.0, gt=0)
    # FTRL-Proximal hyper-parameters (McMahan et al. 2013).
    ftrl_alpha: float = Field(default=0.1, gt=0)
    ftrl_beta: float = Field(default=1.0, ge=0)
    ftrl_l1: float = Field(default=0.0, ge=0)
    ftrl_l2: float = Field(default=1.0, ge=0)
    #: Learn the examination model that corrects position bias (PAL-style).
    position_bias: bool = True
    #: Train the dense, factorised part (torch).
    dense: bool = True
    #: Keep each user's click model in the user state (learner/click_model.py): about
    #: 0.3 ms of worker CPU per shown list and per click, and 2.5 kB more per state. Off
    #: by default: click fraud poisons it beyond what a snapshot rollback undoes
    #: (docs/model.md).
    click_model: bool = False
    #: How long the worker's producer waits to fill a batch (ms), and a batch's largest
    #: size (bytes): its records (changelogs, training records) are kilobytes each, so
    #: Faust's defaults (0 ms, 16 KiB) sent nearly every record as its own request.
    producer_linger_ms: float = Field(default=5.0, ge=0)
    producer_batch_bytes: int = Field(default=512 * 1024, ge=1024)
    #: The events agent takes up to this many records at a time (waiting at most
    #: ``event_batch_ms`` for them), applies them in memory and writes each changed
    #: user, session and list once per batch to its changelog and to Redis.
    event_batch: int = Field(default=256, ge=1)
    event_batch_ms: float = Field(default=10.0, gt=0)
    #: Kafka consumer session timeout and heartbeat (seconds); lower in tests.
    broker_session_timeout: float = Field(default=30.0, gt=0)
    broker_heartbeat_interval: float = Field(default=3.0, gt=0)
    #: Folder for the worker's local table state (Faust ``memory://`` needs none).
    data_dir: str = ".streamrank/worker"
    # -- crash safety of learning (streams/learning.py, docs/reliability.md) -------------
    #: The learner's batches: the examples at offsets [k B, (k+1) B) are one update.
    learn_batch_size: int = Field(default=256, ge=1)
    #: Write the learner's checkpoint (state and offset) at most this often, when it moved.
    checkpoint_interval_ms: int = Field(default=5000, ge=10)
    #: How many recently applied training records are remembered to skip re-sent ones.
    dedupe_window: int = Field(default=100_000, ge=1)


class ScorerSettings(CommonSettings):
    """Settings of ``streamrank serve`` (the HTTP scorer)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Most candidates one ``POST /rank`` may carry.
    max_candidates: int = Field(default=1000, ge=1, le=10_000)
    #: Most bytes one request body may carry.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: Bound of the in-process buffer of impressions waiting for Kafka.
    impression_buffer: int = Field(default=10_000, ge=1)
    #: How long a cached snapshot is trusted before the version is checked again.
    refresh_interval_ms: int = Field(default=100, ge=1)
    #: Redis socket timeout (seconds): a slow Redis degrades the answer, never blocks it long.
    redis_timeout_s: float = Field(default=0.05, gt=0)
    #: Redis socket timeout (seconds) for loading a snapshot (megabytes), off the request path.
    snapshot_timeout_s: float = Field(default=5.0, gt=0)
    #: Bearer token of the endpoints that change state (``POST /admin/...``); unset, they
    #: answer 403.
    admin_token: SecretStr | None = None
