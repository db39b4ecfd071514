"""Crash safety of learning: SIGKILL the worker again and again while labelled lists flow.

20,000 labelled lists and 2,000 shown lists go to the examples topic while a real worker
learns from them, together with 1,000 re-sent copies of records already sent (what the
at-least-once join upstream does after a crash) and a few undecodable records. The test
kills the worker with SIGKILL six times, at a random moment after its checkpoint has
passed a mark, and restarts it at once. At the end:

* the newest snapshot equals, array for array and bit for bit, the snapshot of an
  uninterrupted run on the same log (computed here with a plain
  :class:`~learner.trainer.Trainer`: the records at offsets ``[k B, (k+1) B)`` are batch
  ``k``; a record whose kind and source were seen before is skipped);
* its ``examples`` counter is 20,000 and its ``shown`` counter 2,000: no record lost,
  none counted twice;
* the last checkpoint holds the uninterrupted run's complete state (FTRL ``z`` and
  ``n``, AdamW moments and step counts, ...) at the checkpoint's offset.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from learner.checkpoint import Checkpoint, decode_checkpoint
from learner.features import RankContext, featurize
from learner.snapshot import Snapshot, decode
from learner.statedict import StateDict
from learner.trainer import Trainer
from ops.processes import worker_process
from ops.settings import WorkerSettings
from streams.admin import ensure_topics
from streams.examples import LabeledList
from streams.topics import Topics
from tests.helpers import wait_for

pytestmark = pytest.mark.integration

LABELED, SHOWN, RESENT, UNDECODABLE = 20_000, 2_000, 1_000, 20
KILLS = 6
BITS, BATCH = 14, 128
WORKER_ENV = {"STREAMRANK_HASH_BITS": str(BITS), "STREAMRANK_LEARN_BATCH_SIZE": str(BATCH),
              "STREAMRANK_CHECKPOINT_INTERVAL_MS": "300",
              "STREAMRANK_SNAPSHOT_INTERVAL_MS": "200"}


def _log_values(seed: int) -> list[bytes]:
    """The examples topic's records in the order they are sent."""
    rng = random.Random(seed)
    lists = []  # 300 distinct lists with their features, reused by many records
    for k in range(300):
        items = [f"sku-{j}" for j in rng.sample(range(400), 6)]
        user = f"u-{k % 80}"
        lists.append((user, items, featurize(RankContext(user, None, "shoes"), items,
                                             BITS).to_json()))
    kinds = ["labeled"] * LABELED + ["shown"] * SHOWN
    rng.shuffle(kinds)
    values: list[bytes] = []
    for n, kind in enumerate(kinds):
        user, items, features = lists[rng.randrange(len(lists))]
        labels = [0.0] * len(items)
        if kind == "labeled":
            labels[min(int(rng.expovariate(0.5)), len(items) - 1)] = 1.0
        rec = LabeledList(
            impression_id=f"imp-{n}", user_id=user, session_id=None, query="shoes",
            item_ids=items, positions=list(range(1, len(items) + 1)), labels=labels,
            weight=rng.choice([1.0, 2.0, 3.0]) if kind == "labeled" else 0.0,
            source=f"{'interactions' if kind == 'labeled' else 'impressions'}/{n % 4}/{n}",
            ts=1_764_000_000_000 + 40 * n, kind=kind, features=features)
        values.append(rec.to_json())
    for _ in range(RESENT):  # a re-sent record comes after its original, within 3000
        i = rng.randrange(len(values))
        values.insert(min(i + rng.randint(1, 3000), len(values)), values[i])
    for _ in range(UNDECODABLE):
        values.insert(rng.randrange(len(values)), b'{"not": "a training record"}')
    return values


def _produce(bootstrap: str, topic: str, values: list[bytes], seed: int,
             failures: list[BaseException]) -> None:
    """Send the records in uneven bursts, over about 25 seconds."""
    rng = random.Random(seed)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    try:
        i = 0
        while i < len(values):
            burst = rng.randint(1, 600)
            for v in values[i:i + burst]:
                producer.send(topic, v)
            producer.flush()
            i += burst
            time.sleep(rng.uniform(0.0, 0.6))
    except BaseException as exc:  # reported by the test
        failures.append(exc)
    finally:
        producer.close()


def _read_log(bootstrap: str, topic: str, end: int) -> list[tuple[int, bytes]]:
    """``(offset, value)`` of every record of the topic's only partition below ``end``."""
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 60
        while (not out or out[-1][0] < end - 1) and time.monotonic() < deadline:
            for msgs in consumer.poll(timeout_ms=500).values():
                out.extend((m.offset, m.value) for m in msgs if m.offset < end)
        return out
    finally:
        consumer.close()


def _end_offset(bootstrap: str, topic: str) -> int:
    tp = TopicPartition(topic, 0)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        return int(consumer.end_offsets([tp])[tp])
    finally:
        consumer.close()


def _uninterrupted(log: list[tuple[int, bytes]], checkpoint_at: int
                   ) -> tuple[Trainer, StateDict | None]:
    """The reference: one trainer over the whole log, batches cut at multiples of
    ``BATCH`` offsets, a record whose (kind, source) was seen before skipped. Returns it
    and its complete state before offset ``checkpoint_at``."""
    s = WorkerSettings(_env_file=None, hash_bits=BITS)
    trainer = Trainer(bits=s.hash_bits, alpha=s.ftrl_alpha, beta=s.ftrl_beta, l1=s.ftrl_l1,
                      l2=s.ftrl_l2, position_bias=s.position_bias, dense=s.dense)
    seen: set[tuple[str, str]] = set()
    blocks: dict[int, list[LabeledList]] = {}
    for offset, value in log:
        batch = blocks.setdefault(offset // BATCH, [])
        try:
            rec = LabeledList.from_json(value)
        except TypeError:
            continue
        if (rec.kind, rec.source) not in seen:
            seen.add((rec.kind, rec.source))
            batch.append(rec)
    state = trainer.state() if checkpoint_at == 0 else None
    for k in sorted(blocks):
        trainer.learn_batch(blocks[k])
        if (k + 1) * BATCH == checkpoint_at:
            state = trainer.state()
    return trainer, state


def _newest_snapshot(r: redis.Redis, prefix: str) -> Snapshot | None:
    versions = r.zrange(f"{prefix}snapshot:versions", -1, -1)
    blob = r.get(f"{prefix}snapshot:v:{int(versions[0])}") if versions else None
    return decode(blob) if blob is not None else None


def _checkpoint(r: redis.Redis, prefix: str) -> Checkpoint | None:
    blob = r.hget(f"{prefix}learner:checkpoint", "blob")
    return decode_checkpoint(blob) if blob is not None else None


def _checkpoint_offset(r: redis.Redis, prefix: str) -> int:
    raw = r.hget(f"{prefix}learner:checkpoint", "next_offset")
    return int(raw) if raw is not None else -1


def _differences(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """Names of the arrays that differ, with the largest difference."""
    out = []
    for name in sorted(set(got) | set(want)):
        if name not in got or name not in want:
            out.append(f"{name}: only in {'want' if name in want else 'got'}")
        elif not np.array_equal(got[name], want[name]):
            diff = np.max(np.abs(got[name].astype(np.float64) - want[name].astype(np.float64)))
            out.append(f"{name}: max |diff| {diff:.3g}")
    return out


def test_killed_worker_learns_every_record_exactly_once(settings_env: dict[str, str],
                                                          tmp_path: Path) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    rng = random.Random(seed)
    env = {**settings_env, **WORKER_ENV}
    bootstrap = env["STREAMRANK_KAFKA_BOOTSTRAP_SERVERS"]
    prefix = env["STREAMRANK_REDIS_PREFIX"]
    topic = Topics(env["STREAMRANK_TOPIC_PREFIX"]).examples
    ensure_topics(bootstrap, Topics(env["STREAMRANK_TOPIC_PREFIX"]), partitions=2)
    values = _log_values(seed)
    failures: list[BaseException] = []
    producer = threading.Thread(target=_produce, args=(bootstrap, topic, values, seed, failures),
                                daemon=True)
    r = redis.Redis.from_url(env["STREAMRANK_REDIS_URL"])
    worker = worker_process(env, tmp_path / "worker.log").start()
    try:
        producer.start()
        killed_at = []
        for k in range(KILLS):  # kill when the checkpoint passed a mark, plus up to 1 s
            mark = len(values) * (k + 1) // (KILLS + 2)
            wait_for(lambda mark=mark: _checkpoint_offset(r, prefix) >= mark, timeout=90,
                     message=f"a checkpoint past offset {mark}")
            time.sleep(rng.uniform(0.0, 1.0))
            killed_at.append(_checkpoint_offset(r, prefix))
            worker.stop(signal.SIGKILL)
            worker.start()
        producer.join(timeout=120)
        assert not producer.is_alive() and not failures, failures
        end = _end_offset(bootstrap, topic)
        assert end == len(values)

        snap = wait_for(lambda: (s := _newest_snapshot(r, prefix)) is not None
                        and s.examples == LABELED and s.meta["shown"] == SHOWN and s,
                        timeout=120, interval=0.3, message="a snapshot of every record")
        assert worker.alive(), worker.log_tail()
        worker.stop(signal.SIGTERM)  # a clean stop writes a last checkpoint
        ckpt = _checkpoint(r, prefix)
        assert ckpt is not None
    finally:
        worker.stop(signal.SIGKILL)
        r.close()
    restarts = worker.log_path.read_text(errors="replace").count("resuming at offset")
    assert restarts >= KILLS + 1, worker.log_tail()
    print(f"killed with the checkpoint at offsets {killed_at}; last checkpoint at "
          f"{ckpt.next_offset} of {end}")

    reference, state = _uninterrupted(_read_log(bootstrap, topic, end), ckpt.next_offset)
    want = reference.snapshot(version=snap.version, now_ms=snap.created_ms)
    assert reference.examples == LABELED and reference.shown == SHOWN
    assert snap.examples == LABELED and snap.meta["shown"] == SHOWN
    assert _differences(snap.arrays, want.arrays) == []
    assert state is not None and _differences(ckpt.state, state) == []
