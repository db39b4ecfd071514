"""A single-node Apache Kafka broker (KRaft mode) run from Maven-resolved jars.

The integration tests and ``streamrank demo`` use it when no broker is configured.
The broker is the real Apache Kafka (the version pinned in ``ops/kafka/pom.xml``):
Maven resolves ``org.apache.kafka:kafka_2.13`` and its runtime dependencies into a
cache folder once, then each start runs ``kafka.Kafka`` from those jars as one JVM
that is both broker and controller, listening on 127.0.0.1 only.

Files of one broker, under its ``data_dir``::

    server.properties   written on every start (ports may change between starts)
    kafka-logs/         the log directory, formatted once; survives ``restart()``
    broker.log          the JVM's stdout and stderr (log4j2 writes to stdout)

Examples
--------
Nothing starts until ``start()`` (or ``with``):

>>> kafka = LocalKafka(port=19092)
>>> kafka.bootstrap_servers, kafka.controller_port
('127.0.0.1:19092', 19093)
>>> kafka.is_running()
False
>>> kafka_reachable("127.0.0.1:1", timeout=0.5)
False

A test or a script uses it as a context manager::

    with LocalKafka(port=free_port()) as kafka:
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers)
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
import weakref
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ops.processes import terminate_group

__all__ = [
    "KAFKA_POM",
    "LOG4J2_CONFIG",
    "LocalKafka",
    "LocalKafkaError",
    "default_jars_dir",
    "kafka_reachable",
    "kafka_version",
]

#: The Maven project that pins the broker version and lists its jars.
KAFKA_POM = Path(__file__).parent / "kafka" / "pom.xml"
#: Logging of the broker JVM: everything to stdout, which goes to ``broker.log``.
LOG4J2_CONFIG = Path(__file__).parent / "kafka" / "log4j2.properties"

_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}
_JAVA_HINT = "install a Java 17+ runtime (Debian: `apt-get install -y openjdk-17-jre-headless`)"
_MAVEN_HINT = "install Maven (Debian: `apt-get install -y maven`)"
_LOG_TAIL_LINES = 30

# Brokers started by this process; stopped at interpreter exit if still running,
# so an exception in a script never leaves an orphan JVM holding the port.
_RUNNING: weakref.WeakSet[LocalKafka] = weakref.WeakSet()


class LocalKafkaError(RuntimeError):
    """The local Kafka broker could not be resolved, started or reached."""


def kafka_version(pom: Path = KAFKA_POM) -> str:
    """Return the Kafka version pinned in the pom (the ``kafka.version`` property).

    Examples
    --------
    >>> kafka_version()
    '4.1.1'
    """
    root = ElementTree.parse(pom).getroot()
    node = root.find("m:properties/m:kafka.version", _POM_NS)
    if node is None or not (node.text or "").strip():
        raise LocalKafkaError(f"{pom} has no <properties><kafka.version>; add the Kafka version there")
    return (node.text or "").strip()


def default_jars_dir(version: str | None = None) -> Path:
    """Return the cache folder of the broker jars, ``~/.cache/streamrank/kafka-<version>``.

    ``$XDG_CACHE_HOME`` replaces ``~/.cache`` when it is set.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "streamrank" / f"kafka-{version or kafka_version()}"


def kafka_reachable(bootstrap: str, timeout: float = 2.0) -> bool:
    """Tell whether a Kafka broker at ``bootstrap`` answers a metadata request.

    Parameters
    ----------
    bootstrap
        Comma-separated ``host:port`` list, as in ``bootstrap_servers``.
    timeout
        Seconds to wait for the TCP connection and for the answer.

    Notes
    -----
    A plain TCP probe comes first: kafka-python 3.0.12 leaks a socket for each
    refused connection (a ``ResourceWarning``, an error under the test suite's
    ``filterwarnings = error``), so it is only asked once something listens.
    """
    addresses = _parse_bootstrap(bootstrap)
    if not any(_port_open(host, port, timeout) for host, port in addresses):
        return False
    try:
        _describe_cluster(bootstrap, timeout)
    except Exception:  # any failure means "not a usable broker"
        return False
    return True


class LocalKafka:
    """One Apache Kafka JVM, broker and KRaft controller, on 127.0.0.1.

    Parameters
    ----------
    port
        Port of the PLAINTEXT listener that clients use.
    controller_port
        Port of the KRaft controller listener; ``port + 1`` when None.
    data_dir
        Folder of the log directory, ``server.properties`` and ``broker.log``.
        When None, a temporary folder is created on first use and removed by
        ``close()`` (and on leaving the ``with`` block).
    jars_dir
        Folder of the broker jars; ``default_jars_dir()`` when None.
    heap
        Maximum JVM heap, as in ``-Xmx``.
    """

    def __init__(
        self,
        port: int = 9092,
        controller_port: int | None = None,
        data_dir: Path | None = None,
        jars_dir: Path | None = None,
        heap: str = "512m",
    ) -> None:
        self.port = port
        self.controller_port = port + 1 if controller_port is None else controller_port
        self.jars_dir = Path(jars_dir) if jars_dir is not None else default_jars_dir()
        self.heap = heap
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._owns_data_dir = data_dir is None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        #: Seconds the last ``start()`` took until the broker answered metadata.
        self.startup_seconds: float | None = None

    # -- addresses and files ---------------------------------------------------

    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to, ``"127.0.0.1:PORT"``."""
        return f"127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        """The broker's folder (a temporary one is created on first access if none was given)."""
        if self._data_dir is None:
            self._data_dir = Path(tempfile.mkdtemp(prefix="streamrank-kafka-"))
        return self._data_dir

    @property
    def log_path(self) -> Path:
        """The broker's console log, ``data_dir / "broker.log"``."""
        return self.data_dir / "broker.log"

    @property
    def pid(self) -> int | None:
        """Process id of the broker JVM, None when not running."""
        return self._process.pid if self.is_running() and self._process is not None else None

    def is_running(self) -> bool:
        """Tell whether the broker JVM started by this object is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """Return the last ``lines`` lines of ``broker.log`` ("" if there is none)."""
        return _tail(self.log_path, lines)

    # -- lifecycle --------------------------------------------------------------

    def ensure_jars(self) -> Path:
        """Resolve the broker jars into ``jars_dir`` with Maven, unless already there.

        Maven writes into a temporary sibling folder that is renamed into place
        only when complete, so an interrupted run never leaves a half-filled
        ``jars_dir``. Maven's local repository (``~/.m2``) caches the downloads.

        Returns
        -------
        Path
            ``jars_dir``, holding ``kafka_2.13-<version>.jar`` and its dependencies.
        """
        if _has_broker_jar(self.jars_dir):
            return self.jars_dir
        mvn = _require_tool("mvn", _MAVEN_HINT)
        _require_tool("java", _JAVA_HINT)
        print("resolving Apache Kafka jars with Maven (first run only)...", file=sys.stderr, flush=True)
        began = time.monotonic()
        self.jars_dir.parent.mkdir(parents=True, exist_ok=True)
        for stale in self.jars_dir.parent.glob(f".{self.jars_dir.name}.partial-*"):
            if time.time() - stale.stat().st_mtime > 3600:  # left by a run killed long ago
                shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{self.jars_dir.name}.partial-", dir=self.jars_dir.parent))
        try:
            command = [mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(KAFKA_POM)]
            command += ["dependency:copy-dependencies", f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                check=False,
            )
            if result.returncode != 0 or not _has_broker_jar(staging):
                output = "\n".join(result.stdout.strip().splitlines()[-_LOG_TAIL_LINES:])
                raise LocalKafkaError(
                    f"Maven could not resolve the Kafka broker jars (exit code {result.returncode}).\n"
                    f"Command: {' '.join(command)}\n{output}\n"
                    "Check that Maven Central (https://repo.maven.apache.org) is reachable from here "
                    "(proxies go in ~/.m2/settings.xml), then run again."
                )
            try:
                os.rename(staging, self.jars_dir)
            except OSError:
                if not _has_broker_jar(self.jars_dir):  # a stale folder without the broker jar
                    shutil.rmtree(self.jars_dir)
                    os.rename(staging, self.jars_dir)
                # else: a concurrent run finished first; its folder is complete
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # nothing left after a successful rename
        print(f"resolved Kafka jars into {self.jars_dir} in {time.monotonic() - began:.1f} s", file=sys.stderr)
        return self.jars_dir

    def start(self, timeout: float = 60.0) -> LocalKafka:
        """Start the broker and wait until it answers a metadata request.

        Formats the log directory the first time, then runs the JVM in its own
        process group with its output in ``broker.log``. Starting a running
        broker does nothing.

        Parameters
        ----------
        timeout
            Seconds to wait for the port and for the first metadata answer.

        Returns
        -------
        LocalKafka
            ``self``, so that ``kafka = LocalKafka(...).start()`` reads well.

        Raises
        ------
        LocalKafkaError
            When Java or Maven is missing, a port is taken, the JVM exits, or the
            broker does not answer in time; the message carries the end of
            ``broker.log``.
        """
        if self.is_running():
            return self
        began = time.monotonic()
        java = _require_tool("java", _JAVA_HINT)
        jars = self.ensure_jars()
        for port in (self.port, self.controller_port):
            if _port_open("127.0.0.1", port, 0.5):
                raise LocalKafkaError(
                    f"port {port} on 127.0.0.1 is already in use (another broker?); stop that "
                    f"process or choose other ports (LocalKafka(port=...), `streamrank broker --port`)"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        properties = self._write_properties()
        # java, then the options every Kafka JVM here gets (classpath, logging)
        classpath = [java, "-cp", str(jars / "*"), f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"]
        if not (self._log_dir / "meta.properties").exists():
            self._format(classpath, properties)

        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the JVM
        self._log_file.write(f"--- streamrank: starting Kafka on {self.bootstrap_servers} ---\n".encode())
        self._log_file.flush()
        jvm_options = [f"-Xmx{self.heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-Djava.awt.headless=true"]
        command = [*classpath[:1], *jvm_options, *classpath[1:], "kafka.Kafka", str(properties)]
        # Own session and process group: Ctrl-C in a terminal reaches only the
        # Python process, which then stops the broker in order (see stop()).
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

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds.

        Keeps ``data_dir``; calling it again, or on a broker never started, does nothing.
        """
        # Forget the process only once it is gone, so that an interrupted stop()
        # is finished by the next call or by the exit hook.
        if self._process is not None:
            terminate_group(self._process, timeout)
            self._process = None
        _RUNNING.discard(self)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def restart(self, timeout: float = 60.0) -> LocalKafka:
        """Stop the broker and start it again on the same ports and data (topics and offsets survive)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the broker and delete ``data_dir`` if it was a temporary folder made by this object."""
        self.stop()
        if self._owns_data_dir and self._data_dir is not None:
            shutil.rmtree(self._data_dir, ignore_errors=True)
            self._data_dir = None

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"running pid={self.pid}" if self.is_running() else "stopped"
        return f"LocalKafka(bootstrap_servers={self.bootstrap_servers!r}, {state})"

    # -- internals ------------------------------------------------------------------

    @property
    def _log_dir(self) -> Path:
        return self.data_dir / "kafka-logs"

    def _write_properties(self) -> Path:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self._log_dir),
            # one node: every internal topic has one replica
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # fewer internal partitions: the first consumer group and the first
            # transaction create their topic in well under a second
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.num.partitions": "4",
            # consumer groups form at once instead of waiting 3 s for more members
            "group.initial.rebalance.delay.ms": "0",
        }
        path = self.data_dir / "server.properties"
        lines = ["# Written by ops/broker.py on every start; edits are overwritten."]
        lines += [f"{key}={value}" for key, value in settings.items()]
        path.write_text("\n".join(lines) + "\n")
        return path

    def _format(self, classpath: list[str], properties: Path) -> None:
        command = [*classpath, "kafka.tools.StorageTool", "format", "-t", _random_cluster_id(), "-c", str(properties)]
        result = subprocess.run(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
            check=False,
        )
        with open(self.log_path, "a") as log:
            log.write(f"--- streamrank: formatting {self._log_dir} ---\n{result.stdout}")
        if result.returncode != 0:
            raise LocalKafkaError(
                f"formatting the Kafka log directory {self._log_dir} failed (exit code {result.returncode}):\n"
                f"{result.stdout.strip()}\nDelete {self.data_dir} (or pass another data_dir) and start again."
            )

    def _wait_until_ready(self, deadline: float, timeout: float) -> None:
        # First the listener accepts connections, then the broker answers metadata
        # (it registers with its own controller a moment after binding the port).
        while not _port_open("127.0.0.1", self.port, 0.5):
            self._check_alive()
            if time.monotonic() > deadline:
                raise self._timeout_error(timeout, "its port never opened")
            time.sleep(0.1)
        last_error: Exception | None = None
        while True:
            self._check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._timeout_error(timeout, f"no metadata answer (last error: {last_error!r})")
            try:
                cluster = _describe_cluster(self.bootstrap_servers, min(remaining, 5.0))
            except Exception as error:  # not ready yet: retry until the deadline
                last_error = error
                time.sleep(0.2)
                continue
            if cluster.get("brokers"):
                return
            last_error = LocalKafkaError(f"metadata listed no brokers: {cluster!r}")
            time.sleep(0.2)

    def _check_alive(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            code = self._process.returncode
            raise LocalKafkaError(
                f"the Kafka broker exited during startup with code {code}. Last lines of {self.log_path}:\n"
                f"{self.log_tail()}"
            )

    def _timeout_error(self, timeout: float, what: str) -> LocalKafkaError:
        return LocalKafkaError(
            f"the Kafka broker on {self.bootstrap_servers} was not ready after {timeout:g} s: {what}. "
            f"Last lines of {self.log_path}:\n{self.log_tail()}"
        )


# -- helpers ---------------------------------------------------------------------------


def _describe_cluster(bootstrap: str, timeout: float) -> dict[str, Any]:
    """Ask a broker for cluster metadata with kafka-python, always closing the client."""
    with warnings.catch_warnings():
        # kafka-python 3.0.12 loads its protocol schemas with importlib.resources'
        # legacy read_text/open_text, deprecated in Python 3.11.
        warnings.filterwarnings("ignore", message=r"(read|open)_text is deprecated", category=DeprecationWarning)
        from kafka import KafkaAdminClient

    timeout_ms = max(int(timeout * 1000), 100)
    # A failed __init__ leaves kafka-python's IO thread running; close it ourselves.
    admin = KafkaAdminClient.__new__(KafkaAdminClient)
    try:
        admin.__init__(
            bootstrap_servers=bootstrap,
            client_id="streamrank-probe",
            bootstrap_timeout_ms=timeout_ms,
            request_timeout_ms=timeout_ms,
        )
    except BaseException:
        if hasattr(admin, "_net"):
            admin._closed = False
            admin.close()
        raise
    try:
        return dict(admin.describe_cluster())
    finally:
        admin.close()


def _parse_bootstrap(bootstrap: str) -> list[tuple[str, int]]:
    """Split ``"h1:p1,h2:p2"`` (optionally ``PLAINTEXT://h:p``) into (host, port) pairs."""
    addresses = []
    for entry in bootstrap.split(","):
        entry = entry.strip().rpartition("://")[2]
        if not entry:
            continue
        host, sep, port = entry.rpartition(":")
        if not sep:
            host, port = entry, "9092"
        addresses.append((host.strip("[]") or "127.0.0.1", int(port)))
    if not addresses:
        raise ValueError(f"bootstrap servers {bootstrap!r} hold no host:port; use e.g. '127.0.0.1:9092'")
    return addresses


def _port_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _has_broker_jar(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("kafka_2.13-*.jar"))


def _require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalKafkaError(f"`{name}` is not on PATH; the local Kafka broker needs it: {hint}")
    return path


def _random_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding (as ``Uuid.randomUuid``)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):  # Kafka rejects ids that look like command-line flags
            return cluster_id


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(file.tell() - 256 * 1024, 0))
            text = file.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


@atexit.register
def _stop_all() -> None:
    for kafka in list(_RUNNING):
        kafka.stop()
