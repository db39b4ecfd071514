"""The evaluation harness: metrics, progressive validation, logs, the OBD conversion."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from learner.features import FeatureBlock
from ops.evaluation import MetricTotals, Replay, list_metrics, make_ranker, true_ndcg
from ops.evaluation.pointwise import tokens
from ops.evaluation.report import (
    oracle_share,
    overall_table,
    paired_table,
    window_table,
)
from ops.obd import fetch_obd, obd_to_log, read_obd
from ops.simulator import Simulator
from ops.simulator.eventlog import EventLogWriter, LogLine, read_log, simulate_log
from streams.examples import LabeledList

# -- metrics on hand-made lists ------------------------------------------------------


def test_reciprocal_rank_and_ndcg_of_a_single_click() -> None:
    # the model orders [b, c, a]; the clicked item c is second
    m = list_metrics(scores=[0.1, 0.9, 0.5], gains=[0.0, 0.0, 1.0], probs=[0.2, 0.5, 0.3])
    assert m.reciprocal_rank == 0.5
    assert m.ndcg == pytest.approx(1 / np.log2(3))
    assert (m.pairs, m.concordant) == (2, 1.0)  # c above a, below b
    assert m.log_loss == pytest.approx(-np.log(0.3))


def test_graded_ndcg_uses_the_interaction_weights() -> None:
    # purchase (3) ranked second, click (1) first: DCG = 1 + 3/log2(3); ideal = 3 + 1/log2(3)
    m = list_metrics(scores=[2.0, 1.0, 0.0], gains=[1.0, 3.0, 0.0], probs=[0.5, 0.3, 0.2])
    assert m.ndcg == pytest.approx((1 + 3 / np.log2(3)) / (3 + 1 / np.log2(3)))
    assert m.reciprocal_rank == 1.0
    # two engaged items share the target: log-loss = -(log 0.5 + log 0.3) / 2
    assert m.log_loss == pytest.approx(-(np.log(0.5) + np.log(0.3)) / 2)


def test_ties_keep_the_served_order() -> None:
    m = list_metrics(scores=[0.0, 0.0, 0.0], gains=[0.0, 1.0, 0.0], probs=[1 / 3] * 3)
    assert m.reciprocal_rank == 0.5
    assert m.concordant == 1.0  # only the pair with the third item is right


def test_auc_pools_pairs_over_lists() -> None:
    totals = MetricTotals()
    totals.add(list_metrics([1.0, 0.0, 0.5], [1.0, 0.0, 0.0], [0.5, 0.2, 0.3]))  # 2 of 2
    totals.add(list_metrics([1.0, 0.0], [0.0, 1.0], [0.6, 0.4]))  # 0 of 1
    s = totals.summary()
    assert s["auc"] == pytest.approx(2 / 3)
    assert s["mrr"] == pytest.approx(0.75)
    assert s["lists"] == 2


def test_calibration_error_is_zero_for_matching_frequencies() -> None:
    totals = MetricTotals()
    # p = 0.5 for two items, one of them chosen, over two lists: mean p = mean y per bin
    totals.add(list_metrics([1.0, 0.0], [1.0, 0.0], [0.55, 0.45]))
    totals.add(list_metrics([1.0, 0.0], [0.0, 1.0], [0.55, 0.45]))
    assert totals.summary()["ece"] == pytest.approx(0.05)


def test_ips_metrics_undo_position_bias() -> None:
    # a click at position 4, seen with probability 1/4, counts 4 times
    m = list_metrics([0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 1.0], [0.1, 0.1, 0.1, 0.7],
                     examination=[1.0, 0.5, 1 / 3, 0.25])
    assert (m.ips_weight, m.ips_rr, m.ips_dcg) == pytest.approx((4.0, 4.0, 4.0))


def test_true_ndcg_and_oracle_share() -> None:
    assert true_ndcg([3.0, 2.0, 1.0], [0.9, 0.5, 0.1]) == pytest.approx(1.0)
    assert true_ndcg([1.0, 2.0, 3.0], [0.9, 0.5, 0.1]) < 1.0
    assert oracle_share(0.75, 0.5) == pytest.approx(0.5)
    assert oracle_share(None, 0.5) is None


# -- progressive validation ----------------------------------------------------------


class Memoriser:
    """Scores 1 for an item the user engaged with before, else 0: pure memory."""

    name = "memoriser"

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock
                   ) -> tuple[np.ndarray, np.ndarray]:
        s = np.array([1.0 if i in self.seen else 0.0 for i in item_ids])
        return s, np.exp(s) / np.exp(s).sum()

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        for rec in records:
            if rec.kind == "labeled":
                self.seen.update(i for i, y in zip(rec.item_ids, rec.labels) if y > 0)


def _list_and_click(n: int, clicked: str = "c") -> list[LogLine]:
    imp = {"impression_id": f"i{n}", "user_id": "u", "ts": 1000 * n,
           "items": [{"item_id": x, "position": p} for p, x in enumerate("abc", start=1)]}
    click = {"type": "click", "user_id": "u", "item_id": clicked, "impression_id": f"i{n}",
             "ts": 1000 * n + 1}
    return [LogLine("impressions", imp, 1000 * n), LogLine("interactions", click, 1000 * n + 1)]


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_a_list_is_scored_before_anything_of_it_is_learned(batch: int) -> None:
    lines = [LogLine("items", {"item_id": x}, 0) for x in "abc"]
    lines += _list_and_click(1) + _list_and_click(2)
    memo = Memoriser()
    result = Replay([memo, make_ranker("upstream", bits=12)], bits=12, batch=batch).run(lines)
    # first list: c unknown, ties keep the served order, c is third; second list: c first
    # (scored when its click arrives, after the first list's records were applied)
    assert result["overall"]["memoriser"]["mrr"] == pytest.approx((1 / 3 + 1.0) / 2)
    assert result["overall"]["upstream"]["mrr"] == pytest.approx(1 / 3)
    assert memo.seen == {"c"}


def test_interactions_arriving_before_their_list_are_joined_and_scored_first() -> None:
    lines = [LogLine("items", {"item_id": x}, 0) for x in "abc"]
    imp, click = _list_and_click(1)
    result = Replay([Memoriser()], bits=12).run(lines + [click, imp])
    assert result["counts"]["labelled_lists"] == 1
    assert result["overall"]["memoriser"]["mrr"] == pytest.approx(1 / 3)


def test_invalid_events_are_counted_and_skipped() -> None:
    lines = [LogLine("impressions", {"impression_id": "i", "user_id": "u", "items": []}, 0),
             *_list_and_click(1)]
    result = Replay([make_ranker("upstream", bits=12)], bits=12).run(lines)
    assert result["counts"]["invalid"] == 1
    assert result["invalid_by_field"] == {"items": 1}
    assert result["counts"]["labelled_lists"] == 1


def test_every_model_runs_on_a_small_simulated_log() -> None:
    buf = io.StringIO()
    simulate_log(Simulator(n_users=30, n_items=60, seed=3, intent_scale=0.8), EventLogWriter(buf),
                 n_requests=120)
    windows: list[tuple[int, int, int]] = []
    models = ("full", "no-position-bias", "sparse-only", "upstream", "popularity", "river", "vw")
    replay = Replay([make_ranker(m, bits=14) for m in models], bits=14, batch=4, every=50,
                    on_window=lambda w, a, b, figures: windows.append((w, a, b)))
    result = replay.run(read_log(io.StringIO(buf.getvalue())))
    assert windows == [(0, 0, 49), (1, 50, 99), (2, 100, 119)]
    assert result["counts"]["served"] == result["counts"]["lists_with_truth"] == 120
    for m in models:
        s = result["overall"][m]
        assert s["lists"] == result["counts"]["labelled_lists"] > 0
        assert 0 < s["mrr"] <= 1 and 0 < s["true_ndcg_at_10"] <= 1
        assert s["ips_mrr"] is not None and 0.0 <= s["auc"] <= 1.0
    table = overall_table(result)
    assert table.count("\n") == len(models) + 1 and "oracle share" in table
    assert window_table(result, "true_ndcg_at_10").count("\n") == 4
    # the paired differences are the first model's figures minus each other's, list by list
    assert result["paired"]["reference"] == "full"
    assert set(result["paired"]["models"]) == set(models[1:])
    full = result["overall"]["full"]
    for m in models[1:]:
        d = result["paired"]["models"][m]
        assert d["lists"] == full["lists"]
        assert d["mrr_diff"] == pytest.approx(full["mrr"] - result["overall"][m]["mrr"])
        assert d["ndcg_at_10_diff"] == pytest.approx(full["ndcg_at_10"]
                                                     - result["overall"][m]["ndcg_at_10"])
        assert d["mrr_diff_se"] is not None and d["mrr_diff_se"] >= 0
    assert paired_table(result).count("\n") == len(models)


def test_pointwise_tokens_one_per_column() -> None:
    from learner.features import CROSS_FEATURES, RankContext, featurize

    block = featurize(RankContext("u", "s", "tent"), ["a", "b"], bits=12, base_scores=[1.0, 0.5])
    x = tokens(block)[0]
    crosses = [k for k in x if k.split("=")[0] in CROSS_FEATURES]
    assert all("=" in k for k in crosses) and all(x[k] == 1.0 for k in crosses)
    assert {k.split("=")[0] for k in crosses} == {"user_x_item", "session_x_item", "query_x_item",
                                                   "item"}
    assert x["upstream_rank"] == 1.0 and "base_score_z" in x


# -- logs ----------------------------------------------------------------------------


def test_log_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    sim = Simulator(n_users=20, n_items=40, seed=1, intent_scale=0.5)
    with EventLogWriter(path) as sink:
        counts = simulate_log(sim, sink, n_requests=30, explore=0.5, seed=2)
    lines = list(read_log(path))
    assert len(lines) == counts["items"] + counts["impressions"] + counts["interactions"]
    assert sum(line.topic == "impressions" for line in lines) == 30
    impressions = [line for line in lines if line.topic == "impressions"]
    for line in impressions:
        assert line.ts == line.value["ts"]
        assert len(line.truth["relevance"]) == len(line.value["items"])  # type: ignore[index]
        assert line.truth["examination"][0] == 1.0  # type: ignore[index]
        props = [it["propensity"] for it in line.value["items"]]
        assert all(0 < p <= 1 for p in props)
    # the same events written again read back equal
    again = io.StringIO()
    writer = EventLogWriter(again)
    for line in lines:
        writer.write(line.topic, line.value, line.ts, line.truth)
    assert [(x.topic, x.value, x.truth) for x in read_log(io.StringIO(again.getvalue()))] == \
        [(x.topic, x.value, x.truth) for x in lines]


def test_a_shuffled_top_log_serves_the_top_in_random_order_with_its_propensities() -> None:
    sim = Simulator(n_users=20, n_items=40, seed=1)
    sink = io.StringIO()
    with pytest.raises(ValueError, match="not combined with explore"):
        simulate_log(sim, EventLogWriter(io.StringIO()), n_requests=1, explore=0.1,
                     shuffle_top=5)
    counts = simulate_log(Simulator(n_users=20, n_items=40, seed=1), EventLogWriter(sink),
                          n_requests=200, shuffle_top=5, seed=3)
    assert counts["swapped"] == 200
    reference = Simulator(n_users=20, n_items=40, seed=1)  # the same searches, upstream order
    first_moved = 0
    for line in (x for x in read_log(io.StringIO(sink.getvalue())) if x.topic == "impressions"):
        upstream = list(reference.next_request().item_ids)
        reference.new_impression_id()
        served = [it["item_id"] for it in line.value["items"]]
        assert sorted(served[:5]) == sorted(upstream[:5]) and served[5:] == upstream[5:]
        assert [it["propensity"] for it in line.value["items"]] == [0.2] * 5 + [1.0] * (
            len(served) - 5)
        first_moved += served[0] != upstream[0]
    assert 120 < first_moved < 200  # the upstream top item stays first in about 1 in 5


def test_the_oracle_ranks_by_true_relevance_and_scores_best_on_the_truth(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with EventLogWriter(path) as sink:
        simulate_log(Simulator(n_users=20, n_items=40, seed=1), sink, n_requests=150)
    result = Replay([make_ranker(m, bits=14) for m in ("upstream", "oracle")], bits=14,
                    every=50, settle=0).run(read_log(path))
    truth = {m: result["overall"][m]["true_ndcg_at_10"] for m in ("upstream", "oracle")}
    assert truth["oracle"] == pytest.approx(1.0) and truth["upstream"] < 0.9


def test_a_malformed_log_line_is_named() -> None:
    with pytest.raises(ValueError, match="log line 2"):
        list(read_log(io.StringIO('{"topic": "items", "value": {}}\n{"value": {}}\n')))
    with pytest.raises(ValueError, match="topic must be one of"):
        list(read_log(io.StringIO('{"topic": "clicks", "value": {}}\n')))


def test_session_intent_drifts_and_leaves_the_other_streams_alone() -> None:
    plain, drifting = Simulator(seed=5), Simulator(seed=5, intent_scale=1.0, intent_drift=0.5)
    reqs_plain = [plain.next_request() for _ in range(40)]
    reqs_drift = [drifting.next_request() for _ in range(40)]
    # the same searches, the same candidates
    assert [r.body for r in reqs_plain] == [r.body for r in reqs_drift]
    assert all(r.intent is None for r in reqs_plain)
    # within a session the intent moves; relevance follows it
    same = [(a, b) for a, b in zip(reqs_drift, reqs_drift[1:]) if a.session_id == b.session_id]
    assert same
    a, b = same[0]
    assert a.intent is not None and b.intent is not None
    assert not np.allclose(a.intent.taste, b.intent.taste)
    idx = [drifting.item_index(i) for i in a.item_ids]
    rel_plain = drifting.population.true_relevance(a.user, idx)
    assert not np.allclose(drifting.relevance(a, a.item_ids), rel_plain)
    assert np.allclose(plain.relevance(reqs_plain[0], reqs_plain[0].item_ids),
                       drifting.population.true_relevance(reqs_plain[0].user, [
                           drifting.item_index(i) for i in reqs_plain[0].item_ids]))


# -- the Open Bandit Dataset conversion ---------------------------------------------

ITEMS = [{"": "0", "item_id": "0", "item_feature_0": "0.5", "item_feature_1": "aa",
          "item_feature_2": "bb", "item_feature_3": "cc"},
         {"": "1", "item_id": "1", "item_feature_0": "-1.5", "item_feature_1": "aa",
          "item_feature_2": "dd", "item_feature_3": "ee"},
         {"": "2", "item_id": "2", "item_feature_0": "0.0", "item_feature_1": "ff",
          "item_feature_2": "bb", "item_feature_3": "cc"}]


def _row(n: int, ts: str, item: int, position: int, click: int, user: str) -> dict[str, str]:
    row = {"": str(n), "timestamp": ts, "item_id": str(item), "position": str(position),
           "click": str(click), "propensity_score": "0.3333"}
    row.update({f"user_feature_{j}": f"{user}{j}" for j in range(4)})
    row.update({f"user-item_affinity_{j}": str(float(j == item)) for j in range(3)})
    return row


ROWS = [_row(0, "2019-11-24 00:00:05.000000+00:00", 2, 1, 0, "x"),
        _row(1, "2019-11-24 00:00:01.500000+00:00", 1, 3, 1, "y"),
        _row(2, "2019-11-24 00:01:00.000000+00:00", 0, 2, 1, "x")]


def _csv(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _fake_wheel(path: Path) -> Path:
    wheel = path / "obp-0.4.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("obp/dataset/obd/random/all/all.csv", _csv(ROWS))
        z.writestr("obp/dataset/obd/random/all/item_context.csv", _csv(ITEMS))
    return wheel


def test_obd_rows_become_time_ordered_lists_with_clicks(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path)
    assert fetch_obd(tmp_path) == wheel  # cached: pip is not run
    rows, items = read_obd(wheel, "random", "all")
    assert len(rows) == 3 and len(items) == 3
    buf = io.StringIO()
    counts = obd_to_log({"random/all": (rows, items)}, EventLogWriter(buf))
    assert counts == {"items": 3, "impressions": 3, "clicks": 2}
    lines = list(read_log(io.StringIO(buf.getvalue())))
    imps = [line for line in lines if line.topic == "impressions"]
    assert [line.value["impression_id"] for line in imps] == [
        "obd-random-all-1", "obd-random-all-0", "obd-random-all-2"]  # by timestamp
    first = imps[0].value
    assert sorted(it["item_id"] for it in first["items"]) == ["obd-all-0", "obd-all-1",
                                                              "obd-all-2"]
    assert sorted(it["position"] for it in first["items"]) == [1, 2, 3]
    by_id = {it["item_id"]: it for it in first["items"]}
    assert by_id["obd-all-1"]["features"] == {"affinity": 1.0, "item_feature_0": -1.5}
    assert by_id["obd-all-1"]["propensity"] == pytest.approx(0.3333)
    assert first["context"]["logged_position"] == 3
    clicks = [line.value for line in lines if line.topic == "interactions"]
    assert [(c["item_id"], c["impression_id"]) for c in clicks] == [
        ("obd-all-1", "obd-random-all-1"), ("obd-all-0", "obd-random-all-2")]
    item = next(line.value for line in lines if line.topic == "items")
    assert item["category"].count("/") == 1 and item["attributes"]["item_feature_0"] == 0.5
    # and the harness runs on it
    result = Replay([make_ranker("upstream", bits=12), make_ranker("sparse-only", bits=12)],
                    bits=12).run(lines)
    assert result["counts"]["labelled_lists"] == 2


def test_obd_slot_mode_is_the_literal_log(tmp_path: Path) -> None:
    rows, items = read_obd(_fake_wheel(tmp_path), "random", "all")
    buf = io.StringIO()
    obd_to_log({"random/all": (rows, items)}, EventLogWriter(buf), mode="slot")
    imps = [line.value for line in read_log(io.StringIO(buf.getvalue()))
            if line.topic == "impressions"]
    assert [[(it["item_id"], it["position"]) for it in v["items"]] for v in imps] == [
        [("obd-all-1", 3)], [("obd-all-2", 1)], [("obd-all-0", 2)]]


def test_obd_users_are_their_hashed_features(tmp_path: Path) -> None:
    rows, items = read_obd(_fake_wheel(tmp_path), "random", "all")
    buf = io.StringIO()
    obd_to_log({"random/all": (rows, items)}, EventLogWriter(buf))
    users: dict[str, Any] = {}
    for line in read_log(io.StringIO(buf.getvalue())):
        if line.topic == "impressions":
            users[line.value["impression_id"]] = line.value["user_id"]
    assert users["obd-random-all-0"] == users["obd-random-all-2"]  # user "x" twice
    assert users["obd-random-all-1"] != users["obd-random-all-0"]
