"""The Grafana dashboard (ops/grafana/streamrank.json) charts only metrics that a running
scorer really exports on /metrics, and every exported monitor metric is documented."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest
import redis

from monitor.prometheus import METRIC_NAMES
from ops.processes import scorer_process
from ops.services import free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "ops" / "grafana" / "streamrank.json"
NAME = re.compile(r"\bstreamrank_[a-z0-9_]+")


def _expressions() -> list[str]:
    dashboard = json.loads(GRAFANA.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    return exprs


def _sample_names(text: str) -> set[str]:
    return {re.split(r"[{ ]", line, maxsplit=1)[0] for line in text.splitlines()
            if line and not line.startswith("#")}


def test_every_grafana_metric_is_exported_by_a_running_scorer(redis_url: str,
                                                              tmp_path: Path) -> None:
    prefix = "graf:"
    r = redis.Redis.from_url(redis_url)
    # one monitor point, as the worker writes it, so labelled families have samples
    r.set(f"{prefix}monitor:latest", json.dumps({
        "ts_ms": int(time.time() * 1000), "mrr_learner": 0.5, "psi": {"item_ctr": 0.01},
        "consumer_lag": {"graf.examples": 0}}))
    port = free_port()
    closed = free_port()  # no Kafka: the scorer answers degraded, /metrics is complete
    env = {"STREAMRANK_REDIS_URL": redis_url, "STREAMRANK_REDIS_PREFIX": prefix,
           "STREAMRANK_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed}",
           "STREAMRANK_TOPIC_PREFIX": "graf."}
    with scorer_process(env, port, tmp_path / "scorer.log"):
        httpx.post(f"http://127.0.0.1:{port}/rank",
                   json={"user_id": "u", "log": False, "items": [{"item_id": "a"}]})

        def scraped() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
            return text if 'streamrank_drift_feature_psi{feature="item_ctr"}' in text else None
        text = wait_for(scraped, timeout=15, message="the monitor point on /metrics")
    r.close()
    exported = _sample_names(text)
    wanted = {name for expr in _expressions() for name in NAME.findall(expr)}
    missing = sorted(wanted - exported)
    assert not missing, f"the Grafana JSON uses metrics /metrics does not export: {missing}"
    # and the monitor's own families are all there
    for name in METRIC_NAMES:
        assert any(s == name or s.startswith(name + "_") for s in exported), name


def test_every_monitor_metric_is_documented() -> None:
    doc = (ROOT / "docs" / "operations.md").read_text()
    undocumented = [n for n in METRIC_NAMES if n not in doc]
    assert not undocumented, undocumented
    assert "ops/grafana/streamrank.json" in doc
