"""The model's promises on the real loop: training and serving compute the same features,
and what the user just did counts in the very next ranking."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import orjson
import pytest
import redis
from kafka import KafkaConsumer

from learner.features import FeatureBlock
from learner.text_encoder import default_encoder
from ops.processes import scorer_process, worker_process
from ops.services import free_port
from streams.producer import EventProducer
from streams.topics import Topics
from tests.helpers import wait_for

pytestmark = pytest.mark.e2e

ITEMS = [f"sku-{i}" for i in range(12)]
CATALOG = [{"item_id": i, "title": f"{['trail', 'road', 'city'][k % 3]} shoe {i}",
            "category": ["shoes/running", "shoes/walking"][k % 2],
            "brand": ["acme", "zed", "kilo"][k % 3], "price": 30.0 + 7 * k}
           for k, i in enumerate(ITEMS)]


def _body(user: str, session: str, log: bool = True, query: str = "trail shoes") -> dict:
    return {"user_id": user, "session_id": session, "query": query, "log": log,
            "items": [{"item_id": i, "base_score": 20.0 - k, "features": {"price": 30.0 + k}}
                      for k, i in enumerate(ITEMS)]}


def _served_model(client: httpx.Client, r: redis.Redis, prefix: str) -> bool:
    """The scorer serves the newest published snapshot."""
    current = r.get(f"{prefix}snapshot:current")
    model = client.get("/model").json()["model_version"]
    return current is not None and model == f"v{int(current)}"


def test_scorer_features_equal_the_features_the_worker_trained_on(
        settings_env: dict[str, str], tmp_path: Path) -> None:
    prefix = settings_env["STREAMRANK_REDIS_PREFIX"]
    topics = Topics(settings_env["STREAMRANK_TOPIC_PREFIX"])
    port = free_port()
    r = redis.Redis.from_url(settings_env["STREAMRANK_REDIS_URL"])
    with worker_process(settings_env, tmp_path / "worker.log") as worker, \
            scorer_process(settings_env, port, tmp_path / "scorer.log"), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        producer = EventProducer(settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"], topics.prefix)
        for item in CATALOG:
            producer.item(item)
        # some history, so that user, session and item counters are all non-trivial
        for n in range(6):
            answer = client.post("/rank", json=_body("u-1", "s-1")).json()
            producer.interaction({"type": "click", "user_id": "u-1", "session_id": "s-1",
                                  "item_id": ITEMS[n], "impression_id": answer["impression_id"]})
        producer.interaction({"type": "view", "user_id": "u-1", "session_id": "s-1",
                              "item_id": ITEMS[9]})
        producer.flush()
        wait_for(lambda: (client.get("/model").json()["examples"] or 0) >= 6, timeout=90,
                 message="a snapshot trained on the six clicks")
        state_key = f"{prefix}state:session:s-1"
        wait_for(lambda: b"sku-9" in (r.get(state_key) or b""), timeout=30,
                 message="the view in the session state")
        wait_for(lambda: _served_model(client, r, prefix), timeout=30,
                 message="the scorer serving the newest snapshot")

        # the scorer's features for a request, then the same request served and clicked
        seen = client.post("/features", json=_body("u-1", "s-1")).json()
        assert seen["degraded"] is False
        answer = client.post("/rank", json=_body("u-1", "s-1")).json()
        assert answer["model_version"] == seen["model_version"]

        consumer = KafkaConsumer(topics.examples,
                                 bootstrap_servers=settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                                 auto_offset_reset="earliest", consumer_timeout_ms=500)
        found: dict[str, dict] = {}

        def learner_got(kind: str) -> bool:
            assert worker.alive(), worker.log_tail()
            for m in consumer:
                rec = orjson.loads(m.value)
                if rec["impression_id"] == answer["impression_id"]:
                    found[rec["kind"]] = rec
            return kind in found

        # the click goes out once the worker has processed the impression (its "shown"
        # record): impressions and clicks travel on two topics, and a click processed
        # first would already be in the state the list's features are computed from
        wait_for(lambda: learner_got("shown"), timeout=60, message="the impression processed")
        producer.interaction({"type": "click", "user_id": "u-1", "session_id": "s-1",
                              "item_id": ITEMS[3], "impression_id": answer["impression_id"]})
        producer.flush()
        producer.close()
        wait_for(lambda: learner_got("labeled"), timeout=60,
                 message="the labelled list of that impression")
        consumer.close()
    r.close()
    trained = found["labeled"]
    block = FeatureBlock.from_json(trained["features"])
    assert list(block.names) == seen["names"]
    by_item = {it["item_id"]: it for it in seen["items"]}
    for row, item_id in enumerate(trained["item_ids"]):
        assert block.index[row].tolist() == by_item[item_id]["index"], item_id
        np.testing.assert_allclose(block.value[row], by_item[item_id]["value"],
                                   rtol=1e-6, atol=1e-7, err_msg=item_id)
    # and the features are not trivially empty: the state made a difference
    names = seen["names"]
    values = {it["item_id"]: dict(zip(names, it["value"])) for it in seen["items"]}
    assert values["sku-9"]["viewed_in_session"] == 1.0
    assert values["sku-0"]["engaged_by_user"] == 1.0
    assert values["sku-0"]["item_ctr"] > values["sku-11"]["item_ctr"]
    if default_encoder() is not None:  # the sentence embeddings agree too (scripts/bootstrap)
        assert sum(v["semantic_match"] != 0.0 for v in values.values()) >= len(values) // 2


def test_a_view_counts_in_the_very_next_ranking(settings_env: dict[str, str],
                                                tmp_path: Path) -> None:
    port = free_port()
    prefix = settings_env["STREAMRANK_REDIS_PREFIX"]
    r = redis.Redis.from_url(settings_env["STREAMRANK_REDIS_URL"])
    rng = np.random.default_rng(0)
    with worker_process(settings_env, tmp_path / "worker.log") as worker, \
            scorer_process(settings_env, port, tmp_path / "scorer.log"), \
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        producer = EventProducer(settings_env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"],
                                 settings_env["STREAMRANK_TOPIC_PREFIX"])
        for item in CATALOG:
            producer.item(item)
        producer.flush()
        wait_for(lambda: r.exists(f"{prefix}item:{ITEMS[-1]}"), timeout=120,
                 message="the worker up and ingesting the catalog")
        # teach the model that shoppers click what they looked at earlier in the visit:
        # in each session one random item is viewed, then clicked when a list shows it
        for n in range(80):
            user, session = f"u-{n}", f"s-{n}"
            viewed = ITEMS[int(rng.integers(len(ITEMS)))]
            producer.interaction({"type": "view", "user_id": user, "session_id": session,
                                  "item_id": viewed})
            producer.flush()
            # the list is served after the view is known, as it would be in a shop
            wait_for(lambda: r.exists(f"{prefix}state:session:{session}"), timeout=30,
                     message=f"the view of session {session}")
            answer = client.post("/rank", json=_body(user, session, query="shoes")).json()
            producer.interaction({"type": "click", "user_id": user, "session_id": session,
                                  "item_id": viewed, "impression_id": answer["impression_id"]})
        producer.flush()
        wait_for(lambda: (client.get("/model").json()["examples"] or 0) >= 80, timeout=120,
                 message="a snapshot trained on the 80 sessions")
        assert worker.alive(), worker.log_tail()

        def position(answer: dict, item: str) -> int:
            return [it["item_id"] for it in answer["items"]].index(item)

        before = client.post("/rank", json=_body("u-new", "s-new", log=False)).json()
        target = before["items"][-1]["item_id"]  # the candidate ranked last
        producer.interaction({"type": "view", "user_id": "u-new", "session_id": "s-new",
                              "item_id": target})
        producer.flush()
        producer.close()
        # as soon as the worker has processed the view (its session state shows it) ...
        wait_for(lambda: target.encode() in (r.get(f"{prefix}state:session:s-new") or b""),
                 timeout=30, message="the worker processing the view")
        # ... the next ranking for that session puts the item higher
        after = client.post("/rank", json=_body("u-new", "s-new", log=False)).json()
        assert position(after, target) < position(before, target), (before, after)
    r.close()
