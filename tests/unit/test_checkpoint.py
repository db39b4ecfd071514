"""Learner checkpoints: complete, exact, refused when they do not fit; offset-aligned
learning gives the same state however records are fetched and however often it restarts."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import torch

from learner.checkpoint import CheckpointError, decode_checkpoint, encode_checkpoint
from learner.dense import DenseLearner
from learner.features import RankContext, featurize
from learner.log_learner import LogLearner
from learner.snapshot import Snapshot, encode
from learner.trainer import Trainer
from streams.examples import LabeledList

BITS = 12
#: Not learning state: wall-clock bookkeeping of the trainer.
NOT_STATE = {"trainer.last_update_ms", "trainer.dirty"}


def _trainer(bits: int = BITS) -> Trainer:
    dense = DenseLearner(user_bits=6, item_bits=6, category_bits=3, brand_bits=3, dim=4)
    return Trainer(bits=bits, dense=dense, stats_bits=8, stats_half_life_ms=20_000)


def _records(n: int, seed: int, resent: int = 0, junk: int = 0) -> list[LabeledList | None]:
    """``n`` distinct records (one in ten ``shown``), ``resent`` copies of earlier ones
    and ``junk`` undecodable ones (``None``), in a random order."""
    rng = random.Random(seed)
    lists = []
    for k in range(40):
        items = [f"sku-{j}" for j in rng.sample(range(60), 5)]
        lists.append((f"u-{k % 9}", items, featurize(RankContext(f"u-{k % 9}"), items,
                                                     BITS).to_json()))
    out: list[LabeledList | None] = []
    for i in range(n):
        user, items, features = rng.choice(lists)
        shown = rng.random() < 0.1
        labels = [0.0] * 5
        if not shown:
            labels[rng.randrange(5)] = 1.0
        out.append(LabeledList(
            impression_id=f"i{i}", user_id=user, session_id=None, query=None, item_ids=items,
            positions=[1, 2, 3, 4, 5], labels=labels, weight=0.0 if shown else 1.0,
            source=f"t/0/{i}", ts=1_000_000 + 997 * i, kind="shown" if shown else "labeled",
            features=features))
    for _ in range(resent):
        i = rng.randrange(len(out))
        out.insert(rng.randrange(i + 1, len(out) + 1), out[i])
    for _ in range(junk):
        out.insert(rng.randrange(len(out) + 1), None)
    return out


def _uninterrupted(log: list[LabeledList | None], batch: int) -> Trainer:
    """The specification: the records at offsets [k B, (k+1) B) are batch k; a record
    whose kind and source were seen before is skipped, and so is an undecodable one."""
    trainer, seen = _trainer(), set()
    for lo in range(0, len(log), batch):
        fresh = []
        for rec in log[lo:lo + batch]:
            if rec is not None and (rec.kind, rec.source) not in seen:
                seen.add((rec.kind, rec.source))
                fresh.append(rec)
        trainer.learn_batch(fresh)
    return trainer


def _all_arrays(obj: Any, path: str = "trainer", seen: set[int] | None = None
                ) -> dict[str, np.ndarray]:
    """Every array, tensor and number reachable from ``obj`` through the learner's own
    objects: what a complete state must cover, found without asking the code."""
    seen = set() if seen is None else seen
    if id(obj) in seen or path in NOT_STATE:
        return {}
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return {path: obj}
    if isinstance(obj, torch.Tensor):
        return {path: obj.detach().numpy()}
    if isinstance(obj, (int, float, np.number)) and not isinstance(obj, bool):
        return {path: np.asarray(obj)}
    out: dict[str, np.ndarray] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_all_arrays(v, f"{path}[{k}]", seen))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(_all_arrays(v, f"{path}[{i}]", seen))
    elif type(obj).__module__.startswith("learner.") and hasattr(obj, "__dict__"):
        for k, v in vars(obj).items():
            out.update(_all_arrays(v, f"{path}.{k}", seen))
    return out


def _assert_same(a: Trainer, b: Trainer) -> None:
    got, want = _all_arrays(a), _all_arrays(b)
    assert sorted(got) == sorted(want)
    differ = [k for k in want if not np.array_equal(got[k], want[k])]
    assert differ == [], differ


def test_a_restored_trainer_learns_on_exactly_like_the_original() -> None:
    log = [r for r in _records(1200, seed=1) if r is not None]
    original = LogLearner(_trainer(), batch_size=50)
    for offset, rec in enumerate(log[:600]):
        original.offer(offset, rec)
    ckpt = decode_checkpoint(encode_checkpoint(original.checkpoint()))  # type: ignore[arg-type]
    restored = LogLearner(_trainer(), batch_size=50)
    restored.restore(ckpt)
    assert restored.trainer.examples == original.trainer.examples > 0
    for learner in (original, restored):
        for offset, rec in enumerate(log[600:], start=600):
            learner.offer(offset, rec)
    # the whole object graph, not just what state() exports: nothing was forgotten
    _assert_same(restored.trainer, original.trainer)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_any_fetches_flushes_and_crashes_give_the_uninterrupted_state(seed: int) -> None:
    rng = random.Random(seed)
    log = _records(1500, seed=seed, resent=120, junk=10)
    batch = rng.choice([16, 50, 64])
    learner, offset, crashes = LogLearner(_trainer(), batch_size=batch, window=5000), 0, 0
    while offset < len(log):
        for _ in range(rng.randint(1, 90)):  # one fetch
            if offset == len(log):
                break
            learner.offer(offset, log[offset])
            offset += 1
        if rng.random() < 0.3:  # caught up for a moment: the open batch, provisionally
            learner.apply_pending()
        if rng.random() < 0.05:  # a re-fetch of records already taken
            back = max(offset - rng.randint(1, 50), 0)
            for o in range(back, offset):
                learner.offer(o, log[o])
        if rng.random() < 0.08:  # crash: a new process from the last checkpoint
            ckpt = learner.checkpoint()
            learner = LogLearner(_trainer(), batch_size=batch, window=5000)
            learner.restore(decode_checkpoint(encode_checkpoint(ckpt)) if ckpt else None)
            offset = ckpt.next_offset if ckpt else 0
            crashes += 1
    learner.apply_pending()
    assert crashes > 0
    want = _uninterrupted(log, batch)
    assert learner.trainer.examples == want.examples == len(
        {r.source for r in log if r is not None and r.kind == "labeled"})
    _assert_same(learner.trainer, want)


def test_a_checkpoint_made_with_other_settings_is_refused_naming_them() -> None:
    learner = LogLearner(_trainer(), batch_size=2)
    for offset, rec in enumerate(_records(4, seed=5)):
        learner.offer(offset, rec)
    ckpt = learner.checkpoint()
    other = LogLearner(_trainer(bits=BITS + 1), batch_size=2)
    with pytest.raises(CheckpointError, match=f"hash_bits: saved {BITS}, now {BITS + 1}"):
        other.restore(ckpt, key="streamrank:learner:checkpoint")


def test_corrupted_or_foreign_bytes_are_refused() -> None:
    learner = LogLearner(_trainer(), batch_size=2)
    for offset, rec in enumerate(_records(4, seed=6)):
        learner.offer(offset, rec)
    blob = bytearray(encode_checkpoint(learner.checkpoint()))  # type: ignore[arg-type]
    blob[-3] ^= 0x10
    with pytest.raises(CheckpointError, match="checksum"):
        decode_checkpoint(bytes(blob))
    served = encode(Snapshot(version=1, created_ms=0, examples=0,
                             arrays={"w": np.zeros(4, dtype=np.float32)}))
    with pytest.raises(CheckpointError, match="not a learner checkpoint"):
        decode_checkpoint(served)
