"""Kafka and Redis for ``streamrank demo`` and the test suite: reuse running ones, else start local ones.

Examples
--------
>>> port = free_port()
>>> 1024 <= port <= 65535
True

A script that needs both services, whether or not they already run::

    with ensure_services(settings.kafka_bootstrap_servers, settings.redis_url, Path(".streamrank")) as services:
        os.environ.update(services.env())
        ...  # services.kafka_bootstrap_servers, services.redis_url
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from ops.broker import LocalKafka, kafka_reachable
from ops.redis_server import LocalRedis, redis_reachable
from ops.settings import mask_url

__all__ = ["Services", "ensure_services", "free_port", "free_ports"]

log = logging.getLogger(__name__)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now.

    The operating system picks it; another process could still take it before
    the caller binds it, which is rare enough for tests and the demo.
    """
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """Return ``count`` distinct free TCP ports on 127.0.0.1 (see ``free_port``).

    Examples
    --------
    >>> a, b = free_ports(2)
    >>> a != b
    True
    """
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:  # all bound at once, so the ports differ
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Services:
    """Addresses of the Kafka broker and the Redis server to use, and the local ones started for them.

    Leaving the ``with`` block (or ``close()``) stops only what was started here;
    reused services are left alone.

    Attributes
    ----------
    kafka_bootstrap_servers
        ``host:port`` list for Kafka clients.
    redis_url
        redis-py URL.
    kafka
        The broker started here, or None when an existing one was reused.
    redis
        The Redis server started here, or None when an existing one was reused.
    """

    kafka_bootstrap_servers: str
    redis_url: str
    kafka: LocalKafka | None = None
    redis: LocalRedis | None = None

    def env(self) -> dict[str, str]:
        """The ``STREAMRANK_`` variables that point services at these addresses.

        Examples
        --------
        >>> Services("127.0.0.1:9092", "redis://127.0.0.1:6379/0").env()
        {'STREAMRANK_KAFKA_BOOTSTRAP_SERVERS': '127.0.0.1:9092', 'STREAMRANK_REDIS_URL': 'redis://127.0.0.1:6379/0'}
        """
        return {
            "STREAMRANK_KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "STREAMRANK_REDIS_URL": self.redis_url,
        }

    def close(self) -> None:
        """Stop the services started here, Redis first; idempotent."""
        for service in (self.redis, self.kafka):
            if service is not None:
                service.close()

    def __enter__(self) -> Services:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def ensure_services(
    kafka_bootstrap: str | None,
    redis_url: str | None,
    workdir: Path,
    *,
    probe_timeout: float = 2.0,
    kafka_timeout: float = 60.0,
    redis_timeout: float = 10.0,
) -> Services:
    """Reuse Kafka and Redis where the given addresses answer, else start local ones on free ports.

    Parameters
    ----------
    kafka_bootstrap
        Address of an existing broker, or None to start a local one.
    redis_url
        URL of an existing Redis, or None to start a local one.
    workdir
        Folder of the local services' data and logs (``workdir/kafka``,
        ``workdir/redis``); a broker started again with the same ``workdir``
        finds its topics again.
    probe_timeout
        Seconds to wait for an answer from a given address.
    kafka_timeout, redis_timeout
        Seconds to wait for a local service to start.

    Returns
    -------
    Services
        The addresses to use; a context manager that stops what it started.

    Raises
    ------
    ops.broker.LocalKafkaError, ops.redis_server.LocalRedisError
        When a local service is needed and cannot start (nothing is left running).
    """
    services = Services(kafka_bootstrap_servers="", redis_url="")
    try:
        if kafka_bootstrap is not None and kafka_reachable(kafka_bootstrap, probe_timeout):
            log.info("using the Kafka broker at %s", kafka_bootstrap)
            services.kafka_bootstrap_servers = kafka_bootstrap
        else:
            if kafka_bootstrap is not None:
                log.warning("no Kafka broker answers at %s; starting a local one", kafka_bootstrap)
            port, controller_port = free_ports(2)
            services.kafka = LocalKafka(port=port, controller_port=controller_port, data_dir=workdir / "kafka")
            services.kafka.start(kafka_timeout)
            services.kafka_bootstrap_servers = services.kafka.bootstrap_servers
            log.info(
                "started Kafka on %s in %.1f s (log: %s)",
                services.kafka_bootstrap_servers,
                services.kafka.startup_seconds,
                services.kafka.log_path,
            )

        if redis_url is not None and redis_reachable(redis_url, probe_timeout):
            log.info("using the Redis server at %s", mask_url(redis_url))
            services.redis_url = redis_url
        else:
            if redis_url is not None:
                log.warning("no Redis server answers at %s; starting a local one", redis_url)
            services.redis = LocalRedis(port=free_port(), data_dir=workdir / "redis")
            services.redis.start(redis_timeout)
            services.redis_url = services.redis.url
            log.info("started Redis on %s (log: %s)", services.redis_url, services.redis.log_path)
    except BaseException:
        services.close()
        raise
    return services
