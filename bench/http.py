"""The HTTP scorer under concurrent load, beside a no-op endpoint on the same stack.

Two servers run as their own processes on loopback: our scorer (``python -m ops.cli
serve``, with a model trained on the example stream loaded from Redis and Kafka taking
its impression log) and the no-op app (``bench.noop_app``, same Starlette and uvicorn
settings). A third process, ``wrk`` (C, one thread, keep-alive connections), sends the
same ``POST /rank`` body of 100 candidates to each for a fixed time, alternating in rounds;
a figure is the median over rounds. Latency is wrk's per-request latency, so at ``c``
connections it includes the queueing of a single-process server.

The scorer is loaded twice per round: with the body as a search backend sends it (the
served list is logged to Kafka, the contract's default) and with ``"log": false``, which
isolates the cost of the impression log. Beside wall-clock figures, each server's CPU time
per request (``/proc``) is recorded: it does not move with the machine's other load.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.context import BenchContext
from bench.ours import new_trainer, publish
from bench.procs import ModuleProcess, cpu_seconds, rss_mib, wait_http
from bench.results import Figure, Section, Target
from bench.workload import rank_cases

__all__ = ["CANDIDATES", "run", "wrk"]

CANDIDATES = 100
#: Concurrent connections of the loaded figure (the target), and of the unloaded one.
LOADED, UNLOADED = 16, 1
BITS = 20

_LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p90_us": %%d, "p99_us": %%d, ' ..
    '"max_us": %%d, "mean_us": %%.1f, "non2xx": %%d, "errors": %%d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


def wrk(url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    """One bounded wrk run against ``url``; its summary (latencies in ms)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "5s",
           "-s", str(script), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30,
                         check=True).stdout
    line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
    r = json.loads(line)
    secs = r["duration_us"] / 1e6
    return {"rps": r["requests"] / secs, "requests": r["requests"],
            "p50": r["p50_us"] / 1e3, "p90": r["p90_us"] / 1e3, "p99": r["p99_us"] / 1e3,
            "max": r["max_us"] / 1e3, "mean": r["mean_us"] / 1e3,
            "non2xx": r["non2xx"], "errors": r["errors"]}


def _body(ctx: BenchContext) -> dict[str, Any]:
    w = ctx.workload()
    c, ids, scores = rank_cases(w, CANDIDATES, count=1, seed=7)[0]
    prices = w.sim.catalog.price
    return {"user_id": c.user_id, "session_id": c.session_id, "query": c.query,
            "items": [{"item_id": i, "base_score": s,
                       "features": {"price": float(prices[w.sim.item_index(i)])}}
                      for i, s in zip(ids, scores)],
            "context": {"device": "mobile"}, "explain": False}


def run(ctx: BenchContext) -> Section:
    """Start both servers and a model, load them with wrk in rounds, compare."""
    section = Section("HTTP scorer, 100 candidates (wrk, loopback)")
    if shutil.which("wrk") is None:
        section.error = "wrk is not installed (apt-get install wrk; scripts/bench installs it)"
        return section
    from ops.processes import scorer_process
    from ops.services import free_ports

    w = ctx.workload()
    trainer = new_trainer(BITS)
    for ex in w.lists[: ctx.pick(3_000, 1_000)]:
        trainer.learn_list(ex)
    env = ctx.deployment("http")
    version = publish(trainer, env["STREAMRANK_REDIS_URL"], env["STREAMRANK_REDIS_PREFIX"])
    scorer_port, noop_port = free_ports(2)
    ctx.say(f"http: starting the scorer on :{scorer_port} and the no-op app on :{noop_port}")
    scorer = ctx.track(scorer_process(env, scorer_port, ctx.logs / "http-scorer.log"))
    noop = ctx.track(ModuleProcess("bench.noop_app", ["--port", str(noop_port)],
                                   ctx.logs / "http-noop.log").start())
    wait_http(f"http://127.0.0.1:{noop_port}/healthz", 30, noop.alive)
    urls = {"noop": f"http://127.0.0.1:{noop_port}/rank",
            "ours": f"http://127.0.0.1:{scorer_port}/rank"}
    pids = {"noop": noop.pid, "ours": scorer.proc.pid if scorer.proc is not None else None,
            "ours, no log": scorer.proc.pid if scorer.proc is not None else None}

    body = _body(ctx)
    deadline = time.monotonic() + 30
    answer: dict[str, Any] = {}
    while time.monotonic() < deadline:  # the scorer polls Redis for the model
        answer = httpx.post(urls["ours"], json=body, timeout=5).json()
        if answer.get("model_version") == f"v{version}" and not answer.get("degraded"):
            break
        time.sleep(0.1)
    else:
        raise RuntimeError(f"the scorer did not load model v{version}: {answer}")
    scripts = {"noop": ctx.workdir / "http-rank.lua", "ours": ctx.workdir / "http-rank.lua",
               "ours, no log": ctx.workdir / "http-rank-nolog.lua"}
    scripts["ours"].write_text(_LUA % orjson.dumps(body).decode())
    scripts["ours, no log"].write_text(_LUA % orjson.dumps({**body, "log": False}).decode())
    targets = {name: urls["noop" if name == "noop" else "ours"] for name in scripts}

    seconds = ctx.pick(3.0, 2.0)
    rounds = ctx.pick(3, 2)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        f"c{c}": {name: [] for name in targets} for c in (LOADED, UNLOADED)}
    for name, url in targets.items():  # warm-up
        wrk(url, scripts[name], LOADED, 1.0)
    for r in range(rounds):
        for c in (LOADED, UNLOADED):
            for name, url in targets.items():
                cpu0 = cpu_seconds(pids[name] or 0)
                res = wrk(url, scripts[name], c, seconds)
                cpu1 = cpu_seconds(pids[name] or 0)
                if cpu0 is not None and cpu1 is not None and res["requests"]:
                    res["cpu_ms_per_request"] = (cpu1 - cpu0) * 1000 / res["requests"]
                runs[f"c{c}"][name].append(res)
                ctx.say(f"http: round {r + 1}/{rounds}, {c} connections, {name}: "
                        f"{res['rps']:,.0f} req/s, p50 {res['p50']:.2f} ms, "
                        f"p99 {res['p99']:.2f} ms, "
                        f"CPU {res.get('cpu_ms_per_request', float('nan')):.2f} ms/request")
    scorer_pid = scorer.proc.pid if scorer.proc is not None else None
    rss = {"ours": rss_mib(scorer_pid) if scorer_pid else None, "noop": rss_mib(noop.pid or 0)}

    def med(c: int, name: str, key: str) -> float | None:
        xs = [x[key] for x in runs[f"c{c}"][name] if key in x]
        return statistics.median(xs) if xs else None

    errors = sum(x["non2xx"] + x["errors"] for v in runs.values() for y in v.values()
                 for x in y)
    section.details = {"runs": runs, "rounds": rounds, "seconds_per_run": seconds,
                       "body_bytes": len(orjson.dumps(body)), "candidates": CANDIDATES,
                       "rss_mib_after_load": rss, "errors": errors,
                       "model_version": f"v{version}", "impressions_logged": True}
    f = section.figures
    f.append(Figure(f"p50 latency, {LOADED} connections", "ms", med(LOADED, "ours", "p50"),
                    "no-op", med(LOADED, "noop", "p50"),
                    Target("ratio", "<=", 1.5, "<= 1.5x no-op")))
    f.append(Figure(f"p99 latency, {LOADED} connections", "ms", med(LOADED, "ours", "p99"),
                    "no-op", med(LOADED, "noop", "p99")))
    f.append(Figure(f"requests/s, {LOADED} connections", "req/s", med(LOADED, "ours", "rps"),
                    "no-op", med(LOADED, "noop", "rps")))
    f.append(Figure(f"p50 latency, {UNLOADED} connection", "ms", med(UNLOADED, "ours", "p50"),
                    "no-op", med(UNLOADED, "noop", "p50")))
    f.append(Figure(f"p99 latency, {UNLOADED} connection", "ms", med(UNLOADED, "ours", "p99"),
                    "no-op", med(UNLOADED, "noop", "p99")))
    f.append(Figure("CPU per request", "ms", med(LOADED, "ours", "cpu_ms_per_request"),
                    "no-op", med(LOADED, "noop", "cpu_ms_per_request"),
                    note="scorer process, all threads (the impression log is a thread)"))
    f.append(Figure(f"without the impression log: p50, {LOADED} connections", "ms",
                    med(LOADED, "ours, no log", "p50"), "no-op", med(LOADED, "noop", "p50"),
                    note='"log": false in the body'))
    f.append(Figure("without the impression log: CPU per request", "ms",
                    med(LOADED, "ours, no log", "cpu_ms_per_request"), "no-op",
                    med(LOADED, "noop", "cpu_ms_per_request")))
    if errors:
        f.append(Figure("failed or non-2xx responses", "", float(errors),
                        target=Target("ours", "<=", 0, "none")))
    return section
