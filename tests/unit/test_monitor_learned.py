"""Progressive validation from the trainer's own forward pass: the trainer hands out each
list's logits from before the update that learns it, the offset-aligned learner reports
each record once, and the monitor scores with exactly those logits (not post-update ones),
without ever stopping the learner."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from learner.dense import DenseLearner
from learner.features import RankContext, featurize
from learner.log_learner import LogLearner
from learner.trainer import Learned, Trainer
from monitor.online import LearnerMonitor
from monitor.quality import list_figures
from streams.examples import LabeledList

BITS = 12


def _trainer(dense: bool = False) -> Trainer:
    small = DenseLearner(user_bits=6, item_bits=6, category_bits=3, brand_bits=3, dim=4)
    return Trainer(bits=BITS, dense=small if dense else False, stats_bits=8)


def _record(i: int, *, user: str | None = None, kind: str = "labeled",
            labels: list[float] | None = None, source: str | None = None,
            features: dict[str, Any] | None = None) -> LabeledList:
    items = [f"sku-{(i * 7 + j) % 13}" for j in range(4)]
    user = user or f"u-{i % 3}"
    if features is None:
        features = featurize(RankContext(user), items, BITS).to_json()
    if labels is None:
        labels = [0.0] * 4 if kind == "shown" else [1.0 if j == i % 4 else 0.0
                                                   for j in range(4)]
    return LabeledList(f"imp-{i}", user, None, None, items, [1, 2, 3, 4], labels,
                       0.0 if kind == "shown" else 1.0, source or f"t/0/{i}",
                       ts=1_000 + i, kind=kind, features=features)


def _monitor(trainer: Trainer, psi_reference: int = 5000
             ) -> tuple[LearnerMonitor, list[np.ndarray]]:
    """A monitor (only its stream side is used) and the learner scores it rates lists by."""
    monitor = LearnerMonitor(trainer, store=None, registry=None, writer=None,  # type: ignore[arg-type]
                             psi_reference=psi_reference)
    seen: list[np.ndarray] = []
    on_labeled = monitor.quality.on_labeled

    def spy(labels: Any, positions: Any, scores: Any) -> dict[str, float]:
        seen.append(np.array(scores["learner"]))
        return on_labeled(labels, positions, scores)

    monitor.quality.on_labeled = spy  # type: ignore[method-assign]
    return monitor, seen


@pytest.mark.parametrize("dense", [False, True])
def test_learn_batch_hands_out_each_lists_logits_from_before_the_update(dense: bool) -> None:
    trainer = _trainer(dense)
    trainer.learn_batch([_record(i) for i in range(30)])  # a model that is not all zeros
    batch = [_record(i) for i in range(30, 40)]
    before = [trainer.score(rec) for rec in batch]
    learned = trainer.learn_batch(batch)
    after = [trainer.score(rec) for rec in batch]
    assert [item.record for item in learned] == batch
    for item, b, a in zip(learned, before, after):
        assert item.block is not None and item.logits is not None
        assert item.logits.shape == (4,)
        if dense:  # the dense part from the training forward pass: float32 precision
            np.testing.assert_allclose(item.logits, b, rtol=0, atol=1e-6)
        else:
            assert np.array_equal(item.logits, b)
        assert np.abs(a - b).max() > 1e-3  # the update moved them: the test can tell


def test_a_batch_where_some_lists_lack_dense_inputs_hands_out_the_served_formula() -> None:
    # such a batch learns without the dense part; the logits handed out still have it
    # where the list has dense inputs, as the scorer (and RankingModel.logits) computes
    trainer = _trainer(dense=True)
    trainer.learn_batch([_record(i) for i in range(30)])
    sparse_only = _record(30, features={**_record(30).features, "dense": None})
    batch = [sparse_only, _record(31), _record(32)]
    before = [trainer.score(rec) for rec in batch]
    learned = trainer.learn_batch(batch)
    assert learned[0].block.dense is None and learned[1].block.dense is not None
    for item, b in zip(learned, before):
        assert np.array_equal(item.logits, b)


def test_a_list_the_model_does_not_learn_from_has_no_logits(caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    trainer = _trainer()
    shown = _record(0, kind="shown")
    unclicked = _record(1, labels=[0.0] * 4)
    bad = _record(2, features={"shape": [4, 2], "index": "not base64!", "value": "x"})
    good = _record(3)
    with caplog.at_level(logging.WARNING):
        learned = trainer.learn_batch([shown, unclicked, bad, good])
    assert [(i.block is None, i.logits is None) for i in learned] == [
        (True, True), (False, True), (True, True), (False, False)]
    assert trainer.skipped == 1


def test_the_log_learner_reports_each_record_once_with_its_committed_states_logits() -> None:
    trainer = _trainer()
    learner = LogLearner(trainer, batch_size=4)
    reports: list[list[Learned]] = []
    learner.on_learned = reports.append
    for offset in range(4):  # batch 0, committed: a model that is not all zeros
        learner.offer(offset, _record(offset))
    reports.clear()
    recs = [_record(i) for i in range(4, 8)]
    expected = {rec.source: trainer.score(rec) for rec in recs}  # the committed state's
    learner.offer(4, recs[0])
    learner.offer(5, recs[1])
    assert learner.apply_pending() == 2  # provisional: reports 4 and 5
    learner.offer(6, recs[2])
    assert learner.apply_pending() == 1  # redone from the committed state: reports 6
    learner.offer(7, replace(recs[0], impression_id="again"))  # a duplicate of offset 4
    # batch 1 is complete: redone whole, nothing new to report (7 is a duplicate)
    assert [[i.record.source for i in r] for r in reports] == [
        ["t/0/4", "t/0/5"], ["t/0/6"]]
    assert learner.checkpoint().next_offset == 8
    for item in (i for r in reports for i in r):
        assert np.array_equal(item.logits, expected[item.record.source])
    # a batch applied whole at once reports all its records
    reports.clear()
    for offset in range(8, 12):
        learner.offer(offset, _record(offset))
    assert [i.record.source for r in reports for i in r] == [f"t/0/{o}" for o in range(8, 12)]


def test_a_failing_hook_does_not_stop_the_learner(caplog: pytest.LogCaptureFixture) -> None:
    def broken(learned: Any) -> None:
        raise RuntimeError("the monitor broke")

    trainer, clean = _trainer(), _trainer()
    learner = LogLearner(trainer, batch_size=4, on_learned=broken)
    with caplog.at_level(logging.ERROR):
        for offset in range(8):
            learner.offer(offset, _record(offset))
    clean.learn_batch([_record(o) for o in range(4)])
    clean.learn_batch([_record(o) for o in range(4, 8)])
    assert trainer.examples == 8 and "on_learned hook failed" in caplog.text
    for key, value in clean.state().items():
        assert np.array_equal(trainer.state()[key], value), key


@pytest.mark.parametrize("dense", [False, True])
def test_the_monitor_scores_each_list_with_the_model_from_before_it_learned_it(
        dense: bool) -> None:
    trainer = _trainer(dense)
    monitor, seen = _monitor(trainer)
    learner = LogLearner(trainer, batch_size=8, on_learned=monitor.on_learned)
    recs = [_record(i) for i in range(24)]
    for k in range(3):
        batch = recs[8 * k: 8 * k + 8]
        before = [trainer.score(rec) for rec in batch]
        for offset, rec in enumerate(batch, start=8 * k):
            learner.offer(offset, rec)
        after = [trainer.score(rec) for rec in batch]
        got = seen[8 * k:]
        assert len(got) == 8
        for s, b, a in zip(got, before, after):
            np.testing.assert_allclose(s, b, rtol=0, atol=1e-6 if dense else 0.0)
            if k:  # the model learned something from the batch: post-update scores differ
                assert np.abs(s - a).max() > 1e-3
    # the figures are the lists' own, from those scores
    expected = np.mean([list_figures(s, np.asarray(r.labels), r.positions)["logloss"]
                        for s, r in zip(seen, recs)])
    assert monitor.quality.summary()["logloss_learner"] == pytest.approx(expected, rel=1e-12)
    assert monitor.quality.labeled == 24


def test_the_trainers_logits_give_the_figures_a_second_forward_pass_gave() -> None:
    recs = [_record(i) for i in range(40)] + [_record(40, kind="shown"), _record(41)]
    a, b = _trainer(), _trainer()
    by_hook, _ = _monitor(a, psi_reference=50)
    by_pass, _ = _monitor(b, psi_reference=50)
    for lo in range(0, len(recs), 7):
        chunk = recs[lo:lo + 7]
        by_hook.on_learned(a.learn_batch(chunk))
        by_pass.before_learning(chunk)
        b.learn_batch(chunk)
    assert by_hook.quality.summary() == by_pass.quality.summary()
    assert by_hook.drift.adwin_mean() == by_pass.drift.adwin_mean()
    assert np.isfinite(by_hook.score_psi.value())
    assert by_hook.score_psi.value() == by_pass.score_psi.value()
    psi = {k: v.value() for k, v in by_hook.feature_psi.items()}
    assert psi and psi.keys() == by_pass.feature_psi.keys()
    assert all(np.isnan(v) and np.isnan(by_pass.feature_psi[k].value())
               or v == by_pass.feature_psi[k].value() for k, v in psi.items())


def test_a_record_the_monitor_cannot_take_costs_only_itself(
        caplog: pytest.LogCaptureFixture) -> None:
    trainer = _trainer()
    monitor, seen = _monitor(trainer)
    good = trainer.learn_batch([_record(i) for i in range(3)])
    broken = replace(good[1], logits=np.zeros(2))  # logits that do not fit the list
    with caplog.at_level(logging.ERROR):
        monitor.on_learned([good[0], broken, good[2]])
    assert monitor.quality.labeled == 2 and len(seen) == 3
    assert "could not score record t/0/1" in caplog.text


def test_shown_clicked_and_skipped_records_count_without_scores() -> None:
    trainer = _trainer()
    monitor, seen = _monitor(trainer)
    shown = replace(_record(0, kind="shown"), model_version="v3")
    bad_click = _record(1, features={"shape": [4, 2], "index": "not base64!", "value": "x"})
    bad_click = replace(bad_click, impression_id=shown.impression_id)
    monitor.on_learned(trainer.learn_batch([shown, bad_click]))
    assert seen == [] and monitor.quality.labeled == 0
    assert monitor.quality.summary()["ctr_reranked"] == 1.0
