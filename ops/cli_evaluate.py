"""``streamrank evaluate``: write event logs, replay them through every model, report.

    streamrank evaluate simulate --requests 20000 --seed 0 --out /tmp/sim.jsonl
    streamrank evaluate run /tmp/sim.jsonl [--models full,upstream,...] [--json out.json]
    streamrank evaluate obd [--policy random] [--campaign all,men,women]
    streamrank evaluate report out.json     (the tables again, from a --json file)

``run`` is progressive validation (:mod:`ops.evaluation.replay`): each served list is
scored by every model before any model learns from it; a line per window of ``--every``
lists while it runs, then the overall table and the tables over time, in Markdown.
``obd`` fetches the Open Bandit Dataset sample (:mod:`ops.obd`), writes it as a log and
runs the same replay on it.

Examples
--------
>>> import argparse
>>> parser = argparse.ArgumentParser(prog="streamrank")
>>> _ = add_parser(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["evaluate", "run", "log.jsonl", "--models", "full,vw"])
>>> args.action, args.models, args.every, args.batch
('run', 'full,vw', 1000, 16)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from ops.evaluation.rankers import MODELS, make_ranker
from ops.evaluation.replay import Replay
from ops.evaluation.report import (
    overall_table,
    paired_table,
    progress_line,
    window_table,
)

__all__ = ["add_parser", "run"]

SIM_COLUMNS = ("mrr", "ndcg_at_10", "ips_mrr", "ips_ndcg_at_10", "auc", "log_loss", "ece",
               "true_ndcg_at_10", "oracle_share", "seconds")


def _replay_options(p: argparse.ArgumentParser, every: int, truth: bool = True) -> None:
    models = MODELS if truth else tuple(m for m in MODELS if m != "oracle")
    p.add_argument("--models", default=",".join(models),
                   help=f"comma-separated models to compare (default: all: {','.join(models)}"
                        + ("; oracle ranks by the simulator's true relevance)" if truth else ")"))
    p.add_argument("--every", type=int, default=every, metavar="N",
                   help=f"served lists per reporting window (default: {every})")
    p.add_argument("--batch", type=int, default=16, metavar="N",
                   help="training records per learning step, as the worker batches them "
                        "(default: 16)")
    p.add_argument("--bits", type=int, default=20,
                   help="log2 of the hashed feature space (default: 20)")
    p.add_argument("--settle", type=int, default=200, metavar="N",
                   help="lists served after a list before its outcome counts (default: 200)")
    p.add_argument("--examination-eta", type=float, default=None, metavar="ETA",
                   help="for IPS metrics on logs without their own examination "
                        "probabilities: assume 1 / position**ETA")
    p.add_argument("--json", type=Path, default=None, metavar="FILE",
                   help="also write the full results (windows, calibration) as JSON to FILE")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.add_argument("--se", action="store_true",
                   help="show the standard error of MRR and NDCG@10, and a table of the first "
                        "model's per-list lead over each other one, paired over the same lists")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to ``subparsers`` and return its parser."""
    parser = subparsers.add_parser(
        "evaluate", help="offline evaluation: simulated or logged events, every model",
        description="Write event logs and replay them with progressive validation: every "
        "served list is scored by every model before any of them learns from it.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    sim = sub.add_parser("simulate", help="write a simulated event log with its ground truth")
    sim.add_argument("--requests", type=int, default=20000, help="searches (default: 20000)")
    sim.add_argument("--seed", type=int, default=0, help="simulator seed (default: 0)")
    sim.add_argument("--out", type=Path, required=True, metavar="FILE", help="the log to write")
    sim.add_argument("--users", type=int, default=200, help="shoppers (default: 200)")
    sim.add_argument("--items", type=int, default=300, help="catalog size (default: 300)")
    sim.add_argument("--intent", type=float, default=0.8, metavar="SCALE",
                     help="scale of each session's drifting intent; 0 for none (default: 0.8)")
    sim.add_argument("--intent-drift", type=float, default=0.3, metavar="RATE",
                     help="share of the intent redrawn per request (default: 0.3)")
    sim.add_argument("--explore", type=float, default=0.0, metavar="P",
                     help="probability of swapping two neighbours in the top 10 of a served "
                          "list, logged as item propensities (default: 0, the upstream "
                          "order only)")
    sim.add_argument("--shuffle-top", type=int, default=0, metavar="K",
                     help="serve the first K candidates of every list in a uniformly random "
                          "order, logged as propensities 1/K, so that plain click metrics "
                          "on the log are free of position bias (default: 0, off)")

    rp = sub.add_parser("run", help="replay a log through the models and report")
    rp.add_argument("log", type=Path, help="a JSON-lines event log")
    _replay_options(rp, every=1000)

    rep = sub.add_parser("report", help="print the tables of a results file again")
    rep.add_argument("results", type=Path, help="a file written by --json")
    rep.add_argument("--se", action="store_true",
                     help="show the standard error of MRR and NDCG@10, and a table of the first "
                        "model's per-list lead over each other one, paired over the same lists")

    loop = sub.add_parser("loop", help="the closed loop in one process: simulator, worker "
                                       "logic and learner, no services (fast model work)")
    loop.add_argument("--events", type=int, default=50_000, help="events to run (default 50000)")
    loop.add_argument("--seed", type=int, default=0, help="simulation seed")
    loop.add_argument("--every", type=int, default=2000, help="searches between report lines")
    loop.add_argument("--sessions", type=int, default=64, metavar="N",
                      help="shoppers' sessions open at once, their searches interleaved, as "
                           "in streamrank demo (default: 64)")
    loop.add_argument("--sparse-only", action="store_true", help="train without the dense part")
    loop.add_argument("--no-position-bias", action="store_true",
                      help="train without the examination model")
    loop.add_argument("--click-model", action="store_true",
                      help="keep each user's click model in the state, as the worker does with "
                           "STREAMRANK_CLICK_MODEL=true (docs/model.md)")

    obd = sub.add_parser("obd", help="the Open Bandit Dataset sample through the harness")
    obd.add_argument("--policy", default="random",
                     help="logging policies, comma-separated: random, bts (default: random)")
    obd.add_argument("--campaign", default="all",
                     help="campaigns, comma-separated: all, men, women (default: all)")
    obd.add_argument("--mode", choices=("candidates", "slot"), default="candidates",
                     help="candidates: rank the campaign's catalog for each row (default); "
                          "slot: each row a one-item list")
    obd.add_argument("--cache", type=Path, default=Path(".streamrank/obd"), metavar="DIR",
                     help="where the obp wheel is kept (default: .streamrank/obd)")
    obd.add_argument("--out", type=Path, default=None, metavar="FILE",
                     help="keep the converted log in FILE (default: a temporary file)")
    obd.add_argument("--seed", type=int, default=0, help="seed of the candidates' order")
    _replay_options(obd, every=2500, truth=False)
    return parser


def _log(msg: str) -> None:
    print(f"[evaluate {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _simulate(args: argparse.Namespace) -> int:
    from ops.simulator import Simulator
    from ops.simulator.eventlog import EventLogWriter, simulate_log

    sim = Simulator(n_users=args.users, n_items=args.items, seed=args.seed,
                    intent_scale=args.intent, intent_drift=args.intent_drift)
    t0 = time.perf_counter()
    with EventLogWriter(args.out) as sink:
        counts = simulate_log(sim, sink, args.requests, explore=args.explore,
                              shuffle_top=args.shuffle_top, seed=args.seed,
                              on_progress=lambda n: _log(f"{n} requests"),
                              progress_every=max(1, args.requests // 10))
    _log(f"wrote {args.out}: {counts} in {time.perf_counter() - t0:.1f}s")
    return 0


def _replay(path: Path, args: argparse.Namespace, title: str,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    from ops.simulator.eventlog import read_log

    names = [m.strip() for m in args.models.split(",") if m.strip()]
    rankers = [make_ranker(m, bits=args.bits) for m in names]
    examination = None
    if args.examination_eta is not None:
        eta = args.examination_eta

        def examination(positions: np.ndarray) -> np.ndarray:
            return 1.0 / np.asarray(positions, dtype=np.float64) ** eta

    def on_window(w: int, first: int, last: int, figures: dict[str, dict[str, Any]]) -> None:
        if not args.quiet:
            _log(progress_line(first, last, figures))

    replay = Replay(rankers, bits=args.bits, batch=args.batch, every=args.every,
                    settle=args.settle, on_window=on_window, examination=examination)
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = replay.run(read_log(path))
    result["log"] = str(path)
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    result["cpu_seconds"] = round(time.process_time() - cpu0, 1)
    if extra:
        result.update(extra)
    result["title"] = title
    _print_report(result, title, se=args.se)
    if args.json is not None:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2 |
                                           orjson.OPT_SERIALIZE_NUMPY))
        _log(f"wrote {args.json}")
    return result


def _print_report(result: dict[str, Any], title: str, se: bool = False) -> None:
    c = result["counts"]
    print(f"## {title}\n")
    print(f"{c['served']} served lists, {c['labelled_lists']} with an interaction "
          f"({c['labelled_records']} labelled records); replay took "
          f"{result['wall_seconds']} s ({result['cpu_seconds']} s CPU).\n")
    print(overall_table(result, SIM_COLUMNS, se=se))
    paired = paired_table(result) if se else None
    if paired is not None:
        print("\nPer-list differences from the first model, paired over the same lists "
              f"(mean ± standard error):\n\n{paired}")
    keys = [k for k in ("ips_mrr", "true_ndcg_at_10", "mrr")
            if any(w["models"][m].get(k) is not None for w in result["windows"]
                   for m in result["models"])]
    for key in keys:
        print(f"\nOver time:\n\n{window_table(result, key)}")
    print(flush=True)


def _obd(args: argparse.Namespace) -> int:
    from ops.obd import describe, fetch_obd, load_tables, obd_to_log
    from ops.simulator.eventlog import EventLogWriter

    policies = [p.strip() for p in args.policy.split(",") if p.strip()]
    campaigns = [c.strip() for c in args.campaign.split(",") if c.strip()]
    wheel = fetch_obd(args.cache)
    tables = load_tables(wheel, policies, campaigns)
    info = describe(tables)
    for key, d in info.items():
        _log(f"{key}: {d}")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out if args.out is not None else Path(tmp) / "obd.jsonl"
        with EventLogWriter(out) as sink:
            counts = obd_to_log(tables, sink, mode=args.mode, seed=args.seed)
        _log(f"wrote {out}: {counts}")
        _replay(out, args, title=f"Open Bandit Dataset sample: policy {','.join(policies)}, "
                f"campaign {','.join(campaigns)}, mode {args.mode}",
                extra={"obd": {"tables": info, "log": counts, "mode": args.mode,
                               "wheel": wheel.name}})
    return 0


def run(args: argparse.Namespace) -> int:
    """Run ``streamrank evaluate``."""
    if args.action == "simulate":
        return _simulate(args)
    if args.action == "run":
        _replay(args.log, args, title=f"Progressive validation on {args.log.name}")
        return 0
    if args.action == "loop":
        from ops.evaluation.closed_loop import closed_loop

        def show(r: dict) -> None:
            print(f"{r['events']:7d} events {r['searches']:6d} searches  true NDCG@10 upstream "
                  f"{r['upstream_ndcg']:.3f} reranked {r['reranked_ndcg']:.3f}  "
                  f"{r['oracle_share']:.0%} of the oracle's gain", flush=True)

        closed_loop(args.events, seed=args.seed, every=args.every, on_row=show,
                    sessions=args.sessions, click_model=args.click_model,
                    dense=not args.sparse_only, position_bias=not args.no_position_bias)
        return 0
    if args.action == "report":
        result = orjson.loads(args.results.read_bytes())
        _print_report(result, result.get("title", str(args.results)), se=args.se)
        return 0
    return _obd(args)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ops.cli_evaluate ...`` (the same as ``streamrank evaluate ...``)."""
    parser = argparse.ArgumentParser(prog="streamrank")
    add_parser(parser.add_subparsers(dest="command"))
    return run(parser.parse_args(["evaluate", *(argv if argv is not None else sys.argv[1:])]))


if __name__ == "__main__":
    sys.exit(main())
