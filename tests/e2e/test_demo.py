"""``streamrank demo`` on embedded defaults, unattended, as a user runs it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def test_demo_ends_with_reranked_ctr_above_the_upstream_order(tmp_path: Path) -> None:
    # nothing configured: the demo starts its own Kafka and Redis
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMRANK_")}
    env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"  # nothing answers there
    env["STREAMRANK_REDIS_URL"] = "redis://127.0.0.1:1/0"
    proc = subprocess.run(
        [sys.executable, "-m", "ops.cli", "demo", "--duration", "60", "--json",
         "--workdir", str(tmp_path / "demo")],
        env=env, capture_output=True, text=True, timeout=400)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]
    assert "worker ready" in out and "summary:" in out, out[-4000:]
    assert re.search(r"dashboard: http://127\.0\.0\.1:\d+/dashboard", out), out[:4000]
    summary = json.loads(out[out.index("\n{") + 1 : out.rindex("}") + 1])
    up, rr = summary["upstream"], summary["reranked"]
    assert up["impressions"] > 500 and rr["impressions"] > 500, summary
    assert rr["ctr"] > up["ctr"], summary
    assert rr["ndcg_at_10"] > up["ndcg_at_10"], summary
