"""The events agent's write-back tables: reads see the batch, a flush writes each key once."""

from __future__ import annotations

import random
from typing import Any

import pytest

from streams.pipeline import Pipeline
from streams.schemas import ImpressionEvent, InteractionEvent, ItemEvent
from streams.writeback import DELETED, WriteBack


@pytest.mark.parametrize("seed", range(5))
def test_random_batches_match_a_plain_dict(seed: int) -> None:
    rng = random.Random(seed)
    table: dict[str, Any] = {}
    model: dict[str, Any] = {}
    wb = WriteBack(table)
    for _ in range(30):  # batches
        last_partition: dict[str, int] = {}
        for _ in range(rng.randint(0, 40)):
            key = f"k{rng.randint(0, 12)}"
            wb.partition = rng.randint(0, 3)
            op = rng.random()
            if op < 0.5:
                value = rng.random()
                wb[key] = model[key] = value
                last_partition[key] = wb.partition
            elif op < 0.7:
                if key in model:  # popping a missing key changes nothing
                    last_partition[key] = wb.partition
                assert wb.pop(key, None) == model.pop(key, None)
            elif op < 0.8 and key in model:
                del wb[key]
                del model[key]
                last_partition[key] = wb.partition
            else:
                assert wb.get(key) == model.get(key)
                assert (key in wb) == (key in model)
            assert dict(wb.items()) == model
            assert len(wb) == len(model)
        before = dict(table)
        writes = wb.take()
        for key, value, _ in writes:  # what the worker sends to the changelog
            if value is DELETED:
                del table[key]  # only keys the table has are deleted
            else:
                table[key] = value
        assert table == model
        keys = [k for k, _, _ in writes]
        assert len(keys) == len(set(keys)), "a key was written twice in one flush"
        for key, value, partition in writes:
            assert partition == last_partition[key]
            assert (value is DELETED) == (key not in model)
        # a key is written only when the batch touched it, and a deletion only of a key
        # the table had
        assert all(k in last_partition for k in keys)
        assert all(k in before for k, v, _ in writes if v is DELETED)
        assert wb.pending == 0


def test_missing_keys_raise_and_pop_without_default_raises() -> None:
    wb = WriteBack({"a": 1})
    with pytest.raises(KeyError):
        _ = wb["b"]
    with pytest.raises(KeyError):
        wb.pop("b")
    with pytest.raises(KeyError):
        del wb["b"]
    del wb["a"]
    with pytest.raises(KeyError):
        _ = wb["a"]
    assert wb.flush() == 1 and wb.table == {}


def _traffic() -> list[Any]:
    from ops.simulator import Simulator

    sim = Simulator(n_users=40, n_items=60, seed=3, concurrent_sessions=4)
    events: list[Any] = [ItemEvent.model_validate(e) for e in sim.catalog_events()]
    for t in range(150):
        req = sim.next_request()
        ids = list(req.item_ids)
        events.append(ImpressionEvent.model_validate(sim.impression_event(req, ids, f"i{t}")))
        events += [InteractionEvent.model_validate(e) for e in sim.respond(req, ids, f"i{t}")]
    return events


def _run(pipeline: Pipeline, events: list[Any], flush_every: int,
         held: list[WriteBack]) -> list[Any]:
    out = []
    for n, ev in enumerate(events):
        if isinstance(ev, ItemEvent):
            pipeline.on_item(ev, ts=0)
            continue
        if isinstance(ev, ImpressionEvent):
            fx = pipeline.on_impression(ev, ts=ev.ts or 0, source=f"x/0/{n}")
        else:
            fx = pipeline.on_interaction(ev, ts=ev.ts or 0, source=f"y/0/{n}")
        out += [ex.to_json() for ex in fx.examples]
        if held and n % flush_every == 0:
            for t in held:
                t.flush()
    for t in held:
        t.flush()
    return out


def test_the_pipeline_through_write_back_tables_is_the_pipeline() -> None:
    events = _traffic()
    plain = Pipeline.in_memory(bits=16)
    expected = _run(plain, events, 0, [])

    tables: dict[str, dict[str, Any]] = {n: {} for n in ("imp", "pend", "users", "sessions")}
    held = [WriteBack(t) for t in tables.values()]
    batched = Pipeline(bits=16, items=plain.items.__class__(), impressions=held[0],
                       pending=held[1], users=held[2], sessions=held[3])
    got = _run(batched, events, 17, held)
    assert got == expected  # the same training records, features and all
    assert tables["users"] == plain.users
    assert tables["sessions"] == plain.sessions
    assert tables["imp"] == plain.join.impressions
    assert tables["pend"] == plain.join.pending
