"""The Open Bandit Dataset sample as an event log.

The Open Bandit Dataset (Saito, Aihara, Matsutani and Narita, "Open Bandit Dataset and
Pipeline: towards realistic and reproducible off-policy evaluation", NeurIPS 2021
Datasets and Benchmarks; Apache-2.0) logs a fashion e-commerce site (ZOZOTOWN) that shows
three items of a campaign's catalog (``all``: 80 items, ``men``: 34, ``women``: 46) in
three slots, chosen either uniformly at random (``random``) or by Bernoulli Thompson
sampling (``bts``), with the click on each and the logging policy's propensity. The
``obp==0.4.1`` wheel on PyPI ships a sample, 10,000 rows per policy and campaign, under
``obp/dataset/obd/{policy}/{campaign}/{campaign}.csv`` with the items' features in
``item_context.csv`` beside it. :func:`fetch_obd` downloads that wheel with pip (once;
obp itself is not installed) and :func:`read_obd` reads the CSVs out of it.

**The three-slot lists cannot be rebuilt from the sample**: each row is one slot of one
impression (``timestamp, item_id, position, click, propensity_score``, four hashed user
features, and the user's affinity to every item of the campaign), and the sample keeps
about one row per impression (of 10,000 rows of ``random/all``, only 9 pairs share a
timestamp). :func:`obd_to_log` therefore offers two readings:

* ``mode="candidates"`` (the default): every row is a request whose candidates are the
  campaign's whole catalog, sent in a random order (what the uniform logging policy is);
  the row's click makes the clicked item the list's engaged item, every other candidate
  an implicit negative (as in sampled-softmax training). Ranking metrics then ask where a
  model puts the item the user clicked among all the campaign's items. Each candidate
  carries the row's user-item affinity to it (``features.affinity``) and the item's
  numeric feature (``features.item_feature_0``); the logged slot and propensity go into
  the impression's ``context``.
* ``mode="slot"``: every row is a one-item impression at its logged position, with its
  propensity: the literal log. A one-item list has nothing to rank (every MRR is 1)
  and teaches a list-wise model nothing; it is there to show that.

Users are the hashed user features (a segment rather than a person: 240 distinct values
in ``random/all``); items become catalog entries with the hashed item features as
category (two levels) and brand.

Examples
--------
>>> import io
>>> from ops.simulator.eventlog import EventLogWriter, read_log
>>> items = [{"item_id": "0", "item_feature_0": "0.5", "item_feature_1": "aa",
...           "item_feature_2": "bb", "item_feature_3": "cc"},
...          {"item_id": "1", "item_feature_0": "-0.5", "item_feature_1": "aa",
...           "item_feature_2": "dd", "item_feature_3": "ee"}]
>>> rows = [{"": "0", "timestamp": "2019-11-24 00:00:34.762830+00:00", "item_id": "1",
...          "position": "2", "click": "1", "propensity_score": "0.5",
...          "user_feature_0": "u0", "user_feature_1": "u1", "user_feature_2": "u2",
...          "user_feature_3": "u3", "user-item_affinity_0": "0.0",
...          "user-item_affinity_1": "2.0"}]
>>> buf = io.StringIO()
>>> obd_to_log({"random/all": (rows, items)}, EventLogWriter(buf))
{'items': 2, 'impressions': 1, 'clicks': 1}
>>> lines = list(read_log(io.StringIO(buf.getvalue())))
>>> [line.topic for line in lines]
['items', 'items', 'impressions', 'interactions']
>>> sorted((it["item_id"], it["features"]["affinity"]) for it in lines[2].value["items"])
[('obd-all-0', 0.0), ('obd-all-1', 2.0)]
>>> lines[3].value["item_id"], lines[2].ts
('obd-all-1', 1574553634762)
"""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from ops.simulator.eventlog import EventLogWriter
from ops.wheels import WheelError, download_wheel

__all__ = ["CAMPAIGNS", "OBP_VERSION", "POLICIES", "ObdError", "fetch_obd", "obd_to_log",
           "read_obd"]

OBP_VERSION = "0.4.1"
POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")

Rows = list[dict[str, str]]


class ObdError(RuntimeError):
    """The sample could not be fetched or read."""


def fetch_obd(cache_dir: str | Path) -> Path:
    """The ``obp`` wheel in ``cache_dir``, downloaded with pip on first use.

    Runs ``python -m pip download --no-deps obp==0.4.1 -d cache_dir`` (nothing is installed).
    """
    try:
        return download_wheel(f"obp=={OBP_VERSION}", cache_dir, f"obp-{OBP_VERSION}-*.whl")
    except WheelError as exc:
        raise ObdError(str(exc)) from None


def read_obd(wheel: str | Path, policy: str = "random", campaign: str = "all"
             ) -> tuple[Rows, Rows]:
    """``(rows, items)`` of one policy and campaign, as dicts of strings, read from the
    wheel without extracting it."""
    if policy not in POLICIES:
        raise ObdError(f"policy must be one of {POLICIES}, got {policy!r}")
    if campaign not in CAMPAIGNS:
        raise ObdError(f"campaign must be one of {CAMPAIGNS}, got {campaign!r}")
    base = f"obp/dataset/obd/{policy}/{campaign}"
    with zipfile.ZipFile(wheel) as z:
        def table(name: str) -> Rows:
            try:
                raw = z.read(f"{base}/{name}")
            except KeyError:
                raise ObdError(f"{wheel} has no {base}/{name}; is it obp {OBP_VERSION}?") \
                    from None
            return list(csv.DictReader(io.StringIO(raw.decode("utf-8"))))

        return table(f"{campaign}.csv"), table("item_context.csv")


def _ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp).timestamp() * 1000)


def _short(value: str, n: int = 10) -> str:
    return hashlib.blake2b(value.encode(), digest_size=8).hexdigest()[:n]


def obd_to_log(tables: Mapping[str, tuple[Rows, Rows]], sink: EventLogWriter, *,
               mode: str = "candidates", seed: int = 0) -> dict[str, int]:
    """Write the catalog, then every row in time order as an impression (and its click).

    Parameters
    ----------
    tables
        ``"policy/campaign" -> (rows, items)`` as :func:`read_obd` returns them; several
        campaigns are merged by timestamp (item ids are ``obd-<campaign>-<id>``).
    sink
        Where the events go.
    mode
        ``"candidates"`` or ``"slot"`` (see the module's docs).
    seed
        Seed of the candidates' random order.

    Returns
    -------
    dict
        Counts: items, impressions, clicks.
    """
    if mode not in ("candidates", "slot"):
        raise ValueError(f"mode must be 'candidates' or 'slot', got {mode!r}")
    rng = np.random.default_rng(seed)
    catalogs: dict[str, list[tuple[str, str]]] = {}  # key -> [(item id, OBD item id)]
    item_feature: dict[str, float] = {}
    n_items = 0
    first_ts = min(_ms(r["timestamp"]) for rows, _ in tables.values() for r in rows)
    for key, (_, items) in tables.items():
        campaign = key.rsplit("/", 1)[-1]
        ids = []
        for it in items:
            item_id = f"obd-{campaign}-{it['item_id']}"
            ids.append((item_id, it["item_id"]))
            item_feature[item_id] = float(it["item_feature_0"])
            sink.write("items", {
                "item_id": item_id,
                "category": f"c{_short(it['item_feature_1'])}/c{_short(it['item_feature_2'])}",
                "brand": f"b{_short(it['item_feature_3'])}",
                "attributes": {"item_feature_0": item_feature[item_id]}, "ts": first_ts})
            n_items += 1
        catalogs[key] = ids
    merged = sorted(((_ms(r["timestamp"]), key, n, r)
                     for key, (rows, _) in tables.items() for n, r in enumerate(rows)),
                    key=lambda t: (t[0], t[1], t[2]))
    clicks = 0
    for ts, key, n, row in merged:
        campaign = key.rsplit("/", 1)[-1]
        user = "obd-u-" + _short("|".join(row[f"user_feature_{j}"] for j in range(4)))
        shown = f"obd-{campaign}-{row['item_id']}"
        impression_id = f"obd-{key.replace('/', '-')}-{n}"
        position = int(row["position"])
        propensity = float(row["propensity_score"])
        if mode == "slot":
            listed = [{"item_id": shown, "position": position, "propensity": propensity,
                       "features": {"affinity": float(
                           row[f"user-item_affinity_{row['item_id']}"]),
                           "item_feature_0": item_feature[shown]}}]
        else:
            ids = catalogs[key]
            order = rng.permutation(len(ids))
            listed = [{"item_id": ids[j][0], "position": p,
                       "features": {"affinity": float(row[f"user-item_affinity_{ids[j][1]}"]),
                                    "item_feature_0": item_feature[ids[j][0]]}}
                      for p, j in enumerate(order.tolist(), start=1)]
            for it in listed:
                if it["item_id"] == shown:
                    it["propensity"] = propensity
        sink.write("impressions", {
            "impression_id": impression_id, "user_id": user, "items": listed,
            "context": {"campaign": campaign, "policy": key.split("/", 1)[0],
                        "logged_position": position, "propensity": propensity},
            "model_version": f"obd-{key}", "ts": ts})
        if row["click"] == "1":
            sink.write("interactions", {"type": "click", "user_id": user, "item_id": shown,
                                        "impression_id": impression_id, "ts": ts + 1})
            clicks += 1
    return {"items": n_items, "impressions": len(merged), "clicks": clicks}


def load_tables(wheel: str | Path, policies: Sequence[str], campaigns: Sequence[str]
                ) -> dict[str, tuple[Rows, Rows]]:
    """:func:`read_obd` for every policy and campaign, keyed ``"policy/campaign"``."""
    return {f"{p}/{c}": read_obd(wheel, p, c) for p in policies for c in campaigns}


def describe(tables: Mapping[str, tuple[Rows, Rows]]) -> dict[str, Any]:
    """Rows, clicks, items and distinct users of each table."""
    out = {}
    for key, (rows, items) in tables.items():
        users = {"|".join(r[f"user_feature_{j}"] for j in range(4)) for r in rows}
        stamps = [r["timestamp"] for r in rows]
        out[key] = {"rows": len(rows), "clicks": sum(r["click"] == "1" for r in rows),
                    "items": len(items), "users": len(users),
                    "shared_timestamps": len(stamps) - len(set(stamps))}
    return out
