"""Processes the benchmarks start: ``python -m bench.<module>`` helpers, readiness, memory.

Examples
--------
>>> rss_mib(os.getpid()) > 10, cpu_seconds(os.getpid()) > 0
(True, True)
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

__all__ = ["ModuleProcess", "cpu_seconds", "rss_mib", "wait_http"]


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB (``VmRSS``), ``None`` when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system, all threads) a process has used, ``None`` when it is gone.

    Unlike wall-clock rates, CPU per unit of work does not depend on what else the machine
    is running, so it is the steadier figure on a shared 2-core box.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_http(url: str, timeout: float, alive: object = None) -> None:
    """Wait until ``GET url`` answers 200; raise ``RuntimeError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():  # type: ignore[operator]
            raise RuntimeError(f"the process behind {url} exited")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {timeout:g} s")


class ModuleProcess:
    """``python -m <module> <args>`` in its own process group, output to a log file."""

    def __init__(self, module: str, args: list[str], log_path: Path,
                 env: dict[str, str] | None = None) -> None:
        self.cmd = [sys.executable, "-m", module, *args]
        self.env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> ModuleProcess:
        """Start it; the log file is appended to."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        """Process id while started."""
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.proc is not None and self.proc.poll() is None

    def wait(self, timeout: float) -> int:
        """Wait for it to exit by itself; the exit code (kills it after ``timeout``)."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise

    def log_tail(self, lines: int = 30) -> str:
        """The end of its output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM its process group, SIGKILL after ``timeout``; idempotent."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.proc.returncode

    def __repr__(self) -> str:
        return f"ModuleProcess({' '.join(self.cmd[2:])!r}, pid={self.pid})"
