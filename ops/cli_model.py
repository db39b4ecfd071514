"""``streamrank model``: which snapshot is served; roll back or forward, pin, unpin, audit.

    streamrank model list                     kept versions, the served and pinned one
    streamrank model rollback [VERSION]       serve VERSION (default: the last good one
                                              older than the served one) and pin it
    streamrank model pin VERSION              serve VERSION and pin it (either direction)
    streamrank model unpin                    follow the newest version again
    streamrank model audit                    every switch: who, when, why, from, to

Every switch is one atomic step in Redis, recorded in the audit log (``--who``,
``--reason``). ``--json`` prints machine-readable output.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="streamrank")
>>> _ = add_parser(parser.add_subparsers(dest="command"))
>>> a = parser.parse_args(["model", "rollback", "12", "--reason", "bad clicks"])
>>> a.action, a.version, a.reason
('rollback', 12, 'bad clicks')
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import Any

import orjson

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``model`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "model", help="list, roll back, pin or unpin the served model version; audit log",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["list", "rollback", "pin", "unpin", "audit"])
    parser.add_argument("version", nargs="?", type=int, default=None)
    parser.add_argument("--reason", default="", help="why (goes to the audit log)")
    parser.add_argument("--who", default=None, help="who (default: the login name)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    return parser


async def _run(args: argparse.Namespace) -> tuple[int, Any]:
    import redis.asyncio as aioredis

    from learner.registry import ModelRegistry, NotKept
    from ops.security import redis_options
    from ops.settings import CommonSettings

    settings = CommonSettings()
    r = aioredis.Redis.from_url(settings.redis_url, **redis_options(settings))
    reg = ModelRegistry(r, settings.redis_prefix)
    who = f"{args.who or getpass.getuser()} (cli)"
    try:
        if args.action == "list":
            return 0, (await reg.state()).as_dict()
        if args.action == "audit":
            return 0, await reg.audit(100)
        if args.action == "unpin":
            moved = await reg.unpin(who=who, reason=args.reason)
            return 0, {"changed": moved is not None, "from": moved and moved[0],
                       "to": moved and moved[1]}
        state = await reg.state()
        version = args.version
        if version is None and args.action == "rollback":
            version = await reg.last_good(before=state.current)
            if version is None:
                return 1, {"error": "no good version older than the served one is kept; "
                                    "name one of " + str(state.versions)}
        if version is None:
            return 2, {"error": "version: give the version to pin"}
        action = "rollback" if state.current is not None and version < state.current else (
            "rollforward" if args.action == "rollback" else "pin")
        try:
            old = await reg.pin(version, who=who, reason=args.reason, action=action)
        except NotKept:
            return 1, {"error": f"version: v{version} is not kept; kept: {state.versions}"}
        return 0, {"from": old, "to": version, "pinned": version, "action": action}
    finally:
        await r.aclose()


def run(args: argparse.Namespace) -> int:
    """Run one action; print its result."""
    try:
        code, out = asyncio.run(_run(args))
    except Exception as exc:  # Redis away, bad configuration: say so, exit non-zero
        print(f"streamrank model: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json or code != 0:
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode(),
              file=sys.stdout if code == 0 else sys.stderr)
    elif args.action == "list":
        for v in reversed(out["versions"]):
            marks = [m for m, on in (("serving", v == out["current"]),
                                     ("pinned", v == out["pinned"]),
                                     ("good", str(v) in out["good"])) if on]
            print(f"v{v}" + (f"  ({', '.join(marks)})" if marks else ""))
    elif args.action == "audit":
        for e in out:
            print(f"{e['ts_ms']}  {e['action']:<11} v{e['from']} -> v{e['to']}  by {e['who']}"
                  + (f"  ({e['reason']})" if e.get("reason") else ""))
    else:
        print(f"v{out.get('from')} -> v{out.get('to')}"
              + (f" ({out['action']}, pinned)" if out.get("action") else ""))
    return code
