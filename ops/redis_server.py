"""A local ``redis-server`` process owned by this Python process, for tests and the demo.

The server runs in the foreground of its own process group (never
``--daemonize``), so ``stop()`` can end exactly the process it started. It binds
127.0.0.1 only and persists nothing (``--save "" --appendonly no``): a restart
comes back empty, which is what tests want.

Files of one server, under its ``data_dir``::

    redis.log   the server's stdout and stderr

Examples
--------
Nothing starts until ``start()`` (or ``with``):

>>> server = LocalRedis(port=16379)
>>> server.url
'redis://127.0.0.1:16379/0'
>>> server.is_running()
False
>>> redis_reachable("redis://127.0.0.1:1/0", timeout=0.5)
False
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time
import weakref
from pathlib import Path
from types import TracebackType
from typing import IO
from urllib.parse import quote

from ops.processes import terminate_group
from ops.settings import mask_url

__all__ = ["LocalRedis", "LocalRedisError", "find_redis_server", "redis_reachable"]

_INSTALL_HINT = "install it with `apt-get install -y redis-server` (Debian/Ubuntu)"
_LOG_TAIL_LINES = 30

# Servers started by this process; stopped at interpreter exit if still running.
_RUNNING: weakref.WeakSet[LocalRedis] = weakref.WeakSet()


class LocalRedisError(RuntimeError):
    """The local Redis server could not be found, started or reached."""


def find_redis_server() -> str:
    """Return the path of ``redis-server``: on PATH, else ``/usr/bin/redis-server``.

    Raises
    ------
    LocalRedisError
        When neither exists; the message says what to install.
    """
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.access("/usr/bin/redis-server", os.X_OK):
        return "/usr/bin/redis-server"
    raise LocalRedisError(f"`redis-server` is not on PATH nor in /usr/bin; {_INSTALL_HINT}")


def redis_reachable(url: str, timeout: float = 2.0) -> bool:
    """Tell whether the Redis server at ``url`` answers PING within ``timeout`` seconds.

    Parameters
    ----------
    url
        A redis-py URL such as ``redis://127.0.0.1:6379/0``.
    timeout
        Seconds for the connection and for the answer.
    """
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


class LocalRedis:
    """One ``redis-server`` process on 127.0.0.1, without persistence.

    Parameters
    ----------
    port
        TCP port to listen on.
    data_dir
        Working folder of the server (``--dir``) and home of ``redis.log``.
        When None, a temporary folder is created on first use and removed by
        ``close()`` (and on leaving the ``with`` block).
    password
        When set, the server requires it (``--requirepass``, Redis AUTH) and :attr:`url`
        carries it; ``repr`` masks it.

    Examples
    --------
    >>> LocalRedis(port=16379, password="hunter2").url
    'redis://:hunter2@127.0.0.1:16379/0'
    >>> LocalRedis(port=16379, password="hunter2")
    LocalRedis(url='redis://:***@127.0.0.1:16379/0', stopped)
    """

    def __init__(self, port: int = 6379, data_dir: Path | None = None,
                 password: str | None = None) -> None:
        self.port = port
        self.password = password
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._owns_data_dir = data_dir is None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        #: Seconds the last ``start()`` took until the server answered PING.
        self.startup_seconds: float | None = None

    @property
    def url(self) -> str:
        """The redis-py URL of database 0, ``"redis://127.0.0.1:PORT/0"`` (with
        ``:PASSWORD@`` before the host when the server requires one)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def data_dir(self) -> Path:
        """The server's folder (a temporary one is created on first access if none was given)."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="streamrank-redis-"))
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The server's log, ``data_dir / "redis.log"``."""
        return self.data_dir / "redis.log"

    @property
    def pid(self) -> int | None:
        """Process id of the server, None when not running."""
        return self._process.pid if self.is_running() and self._process is not None else None

    def is_running(self) -> bool:
        """Tell whether the server started by this object is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of ``redis.log`` ("" if there is none)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start(self, timeout: float = 10.0) -> LocalRedis:
        """Start the server and wait until it answers PING; starting a running server does nothing.

        Returns
        -------
        LocalRedis
            ``self``.

        Raises
        ------
        LocalRedisError
            When ``redis-server`` is missing, the port is taken, the server exits,
            or it does not answer in time; the message carries the end of ``redis.log``.
        """
        if self.is_running():
            return self
        began = time.monotonic()
        executable = find_redis_server()
        if _port_open(self.port):
            raise LocalRedisError(
                f"port {self.port} on 127.0.0.1 is already in use (another Redis?); stop that process "
                f"or choose another port (LocalRedis(port=...), `streamrank broker --redis-port`)"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        command += ["--daemonize", "no", "--dir", str(self.data_dir)]
        if self.password:  # visible in `ps` on this machine only; a test server's password
            command += ["--requirepass", self.password]
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the server
        # Own process group: Ctrl-C in a terminal reaches only Python, which stops the server.
        self._process = subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _RUNNING.add(self)
        try:
            self._wait_until_ready(began + timeout, timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout`` seconds; idempotent."""
        # Forget the process only once it is gone, so that an interrupted stop()
        # is finished by the next call or by the exit hook.
        process = self._process
        if process is not None:
            terminate_group(process, timeout)
            self._process = None
        _RUNNING.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self, timeout: float = 10.0) -> LocalRedis:
        """Stop the server and start it again on the same port (it comes back empty)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and delete ``data_dir`` if it was a temporary folder made by this object."""
        self.stop()
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running() else "stopped"
        return f"LocalRedis(url={mask_url(self.url)!r}, {state})"

    def _wait_until_ready(self, deadline: float, timeout: float) -> None:
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise LocalRedisError(
                    f"redis-server exited during startup with code {self._process.returncode}. "
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            # Probe the port first: a refused connection is cheap and quiet.
            if _port_open(self.port) and redis_reachable(self.url, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise LocalRedisError(
                    f"redis-server on port {self.port} did not answer PING within {timeout:g} s. "
                    f"Last lines of {self.log_path}:\n{self.log_tail()}"
                )
            time.sleep(0.02)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        server.stop()
