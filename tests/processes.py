"""Run streamrank services as real subprocesses in tests, with their logs kept."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

__all__ = ["ServiceProcess", "scorer_process", "worker_process"]

ROOT = Path(__file__).resolve().parents[1]


class ServiceProcess:
    """A ``python -m ops.cli ...`` subprocess whose output goes to a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "ops.cli", *self.args], cwd=ROOT,
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self._log:
            self._log.close()
        return self.proc.returncode

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def worker_process(env: dict[str, str], log_path: Path) -> ServiceProcess:
    """The stream worker, with quick group joins for tests."""
    env = {"STREAMRANK_BROKER_SESSION_TIMEOUT": "6", "STREAMRANK_BROKER_HEARTBEAT_INTERVAL": "0.5",
           "STREAMRANK_SNAPSHOT_INTERVAL_MS": "200", "STREAMRANK_TOPIC_PARTITIONS": "2", **env}
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
