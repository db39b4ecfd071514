"""``python -m bench``: run the benchmark suite, print one table, write the JSON report.

    python -m bench                       # everything (under ten minutes on 2 cores)
    python -m bench --quick               # smaller samples, shorter loads (~2 minutes)
    python -m bench --only scoring learner --json artifacts/scoring.json

Every figure is measured beside its reference in the same run (see ``docs/benchmarks.md``).
Progress goes to stderr, the table to stdout; the exit status is 0 when every benchmark
ran, whether or not its targets passed (the table and the JSON say which did).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import shlex
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# numpy's OpenBLAS single-threaded in this process, as the scorer runs it
# (ops/cli_serve.py): its spinning threads would take CPU from the timed thread (torch's
# own threads, used by the learner, are not affected)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import orjson

from bench import BENCHMARKS
from bench.context import BenchContext
from bench.results import Section, render_table
from bench.timing import say

__all__ = ["main"]


def _machine() -> dict[str, Any]:
    def version(mod: str) -> str | None:
        try:
            return str(importlib.import_module(mod).__version__)
        except Exception:
            return None

    cpu = ""
    try:
        cpu = next((line.split(":", 1)[1].strip() for line in
                    Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "")
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "learner",
                                     "serving", "streams", "ops"], capture_output=True,
                                    text=True, check=False).stdout.strip())
    except OSError:
        commit, dirty = None, None
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "numpy": version("numpy"), "vowpalwabbit": version("vowpalwabbit"),
            "river": version("river"), "uvicorn": version("uvicorn"),
            "starlette": version("starlette"), "faust": version("faust"),
            "git_commit": commit, "model_code_modified": dirty,
            "load_average": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    """Parse options, run the chosen benchmarks, print the table, write the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(BENCHMARKS), metavar="NAME",
                   help=f"run only these ({', '.join(BENCHMARKS)})")
    p.add_argument("--quick", action="store_true",
                   help="smaller samples and shorter loads (about two minutes)")
    p.add_argument("--json", type=Path, default=Path("artifacts/bench.json"),
                   help="where to write the JSON report (default: artifacts/bench.json)")
    p.add_argument("--workdir", type=Path, default=Path("artifacts/bench-work"),
                   help="services' data and every process's log (default: artifacts/bench-work)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated traffic")
    args = p.parse_args(argv)

    names = args.only or list(BENCHMARKS)
    command = "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
    started = datetime.now(UTC)
    machine = _machine()
    say(f"{command.strip()}: {', '.join(names)} on {machine['cpus']} CPUs "
        f"(load average {machine['load_average'][0]:.2f})")
    ctx = BenchContext(quick=args.quick, workdir=args.workdir.resolve(), seed=args.seed)
    sections: list[Section] = []
    try:
        for name in names:
            module = importlib.import_module(BENCHMARKS[name])
            say(f"== {name}")
            t0 = time.monotonic()
            try:
                section = module.run(ctx)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                traceback.print_exc()
                section = Section(name, error=f"{type(exc).__name__}: {exc}")
            finally:
                ctx.stop_tracked()
            section.seconds = time.monotonic() - t0
            section.details.setdefault("benchmark", name)
            sections.append(section)
            say(f"== {name} done in {section.seconds:.0f} s")
    except KeyboardInterrupt:
        say("interrupted; stopping every process started")
        return 130
    finally:
        ctx.close()

    table = render_table(sections)
    load_after = os.getloadavg()
    print(f"\n`{command.strip()}` ({'quick' if args.quick else 'full'} run, "
          f"{started:%Y-%m-%d %H:%M} UTC, {machine['cpus']} CPUs, commit "
          f"{machine['git_commit']}{' + local changes' if machine['model_code_modified'] else ''}"
          f", load average {machine['load_average'][0]:.1f} at start, {load_after[0]:.1f} at "
          f"end)\n\n{table}\n")
    report = {
        "command": command.strip(), "quick": args.quick,
        "started": started.isoformat(), "finished": datetime.now(UTC).isoformat(),
        "machine": {**machine, "load_average_after": load_after},
        "figures": [{"section": s.name, **f.as_dict()} for s in sections for f in s.figures],
        "sections": [{"name": s.name, "error": s.error, "seconds": s.seconds,
                      "details": s.details} for s in sections],
        "table": table,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2
                                       | orjson.OPT_SERIALIZE_NUMPY))
    failed = [f for s in sections for f in s.figures if f.passed is False]
    say(f"wrote {args.json}; {sum(f.passed is True for s in sections for f in s.figures)} "
        f"targets pass, {len(failed)} fail, {sum(bool(s.error) for s in sections)} "
        "benchmarks did not run")
    return 1 if any(s.error for s in sections) else 0


if __name__ == "__main__":
    sys.exit(main())
