"""Run streamrank services (worker, scorer) as subprocesses, with their logs kept.

Used by ``streamrank demo`` and by the end-to-end tests, so both start the services the
way an operator would: ``python -m ops.cli worker`` / ``serve`` configured only by
``STREAMRANK_`` variables.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

__all__ = ["LOCAL_WORKER_ENV", "ServiceProcess", "scorer_process", "signal_group",
           "terminate_group", "worker_process"]


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to a process group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def terminate_group(process: subprocess.Popen[bytes], timeout: float,
                    sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process group of ``process``; SIGKILL it if still alive after
    ``timeout`` seconds. Does nothing when the process has already exited."""
    if process.poll() is None:
        signal_group(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            signal_group(process.pid, signal.SIGKILL)
            process.wait()



class ServiceProcess:
    """A ``python -m ops.cli ...`` subprocess whose output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ServiceProcess:
        """Start the process (its own session, so a signal reaches its children too);
        a no-op while it runs."""
        if self.alive():
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "ops.cli", *self.args],
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of the process's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        """Send ``sig``, wait, then SIGKILL; return the exit code. Idempotent."""
        if self.proc is None:
            return None
        terminate_group(self.proc, timeout, sig)
        if self._log:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: Quick consumer-group joins on a local single broker (tests and the demo).
LOCAL_WORKER_ENV = {"STREAMRANK_BROKER_SESSION_TIMEOUT": "6",
                    "STREAMRANK_BROKER_HEARTBEAT_INTERVAL": "0.5",
                    "STREAMRANK_TOPIC_PARTITIONS": "2"}


def worker_process(env: dict[str, str], log_path: Path) -> ServiceProcess:
    """The stream worker (not started), with quick group joins for a local broker; its
    local state goes beside its log unless ``STREAMRANK_DATA_DIR`` says otherwise."""
    env = {**LOCAL_WORKER_ENV, "STREAMRANK_DATA_DIR": str(log_path.parent / "worker-data"), **env}
    return ServiceProcess(["worker"], env, log_path)


def scorer_process(env: dict[str, str], port: int, log_path: Path,
                   timeout: float = 30.0) -> ServiceProcess:
    """The HTTP scorer on ``port``; returns once ``/healthz`` answers."""
    proc = ServiceProcess(["serve", "--host", "127.0.0.1", "--port", str(port)], env,
                          log_path).start()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"scorer exited:\n{proc.log_tail()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.stop()
    raise RuntimeError(f"scorer did not answer /healthz in {timeout}s:\n{proc.log_tail()}")
