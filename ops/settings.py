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
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CommonSettings", "ScorerSettings", "WorkerSettings"]


class CommonSettings(BaseSettings):
    """Connection settings shared by every streamrank service."""

    model_config = SettingsConfigDict(env_prefix="STREAMRANK_", extra="ignore")

    kafka_bootstrap_servers: str = "localhost:9092"
    redis_url: str = "redis://localhost:6379/0"
    topic_prefix: str = "streamrank."
    #: Namespace of every Redis key this deployment writes (snapshots, history, catalog).
    redis_prefix: str = "streamrank:"
    #: Log2 of the hashed sparse weight space (2**bits coordinates).
    hash_bits: int = Field(default=20, ge=8, le=28)


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
    #: Length of each user's and session's recent-history lists.
    history_length: int = Field(default=50, ge=1)
    #: How long an impression waits in the join table for its clicks.
    impression_ttl_s: float = Field(default=3600.0, gt=0)
    # FTRL-Proximal hyper-parameters (McMahan et al. 2013).
    ftrl_alpha: float = Field(default=0.1, gt=0)
    ftrl_beta: float = Field(default=1.0, ge=0)
    ftrl_l1: float = Field(default=0.0, ge=0)
    ftrl_l2: float = Field(default=1.0, ge=0)
    #: Kafka consumer session timeout and heartbeat (seconds); lower in tests.
    broker_session_timeout: float = Field(default=30.0, gt=0)
    broker_heartbeat_interval: float = Field(default=3.0, gt=0)
    #: Folder for the worker's local table state (Faust ``memory://`` needs none).
    data_dir: str = ".streamrank/worker"


class ScorerSettings(CommonSettings):
    """Settings of ``streamrank serve`` (the HTTP scorer)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Most candidates one ``POST /rank`` may carry.
    max_candidates: int = Field(default=1000, ge=1)
    #: Most bytes one request body may carry.
    max_body_bytes: int = Field(default=1_000_000, ge=1024)
    #: Bound of the in-process buffer of impressions waiting for Kafka.
    impression_buffer: int = Field(default=10_000, ge=1)
    #: How long a cached snapshot is trusted before the version is checked again.
    refresh_interval_ms: int = Field(default=100, ge=1)
    #: Redis socket timeout (seconds): a slow Redis degrades the answer, never blocks it long.
    redis_timeout_s: float = Field(default=0.05, gt=0)
