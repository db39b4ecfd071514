"""Our side of every benchmark, through the public entry points only (one place to adapt).

``learner.trainer.Trainer(bits=...).learn_list(LabeledList)`` learns;
``serving.model.ServingModel(snapshot)`` with ``serving.ranking.rank(model, ctx, items,
explain)`` ranks, exactly as ``POST /rank`` does after parsing the body.

Examples
--------
>>> from bench.workload import make_workload
>>> w = make_workload(100, seed=2, n_users=30, n_items=60)
>>> t = new_trainer(bits=12)
>>> for ex in w.lists:
...     t.learn_list(ex)
>>> model = serving_model(t)
>>> ctx = w.contexts[0]
>>> rows = rank(model, ctx, rank_items(["sku-0001", "sku-0002"], [2.0, 1.0]))
>>> sorted(i for i, _, _ in rows)
[0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

from learner.trainer import Trainer
from serving.model import ServingModel
from serving.ranking import rank
from serving.schemas import RankItem

__all__ = ["Trainer", "new_trainer", "publish", "rank", "rank_items", "serving_model"]


def new_trainer(bits: int) -> Trainer:
    """A fresh learner with the deployment's default hyper-parameters."""
    return Trainer(bits=bits)


def serving_model(trainer: Trainer, version: int = 1) -> ServingModel:
    """What the scorer would serve after loading the trainer's snapshot."""
    return ServingModel(trainer.snapshot(version))


def rank_items(item_ids: Sequence[str],
               base_scores: Sequence[float | None]) -> list[RankItem]:
    """Candidates as ``POST /rank`` has them after parsing the body."""
    return [RankItem(item_id=i, base_score=s) for i, s in zip(item_ids, base_scores)]


def publish(trainer: Trainer, redis_url: str, redis_prefix: str) -> int:
    """Publish the trainer's snapshot as the current version, as the worker does; its version."""
    import asyncio

    import redis.asyncio as aioredis

    from learner.store import SnapshotStore

    async def go() -> int:
        client = aioredis.Redis.from_url(redis_url)
        try:
            store = SnapshotStore(client, prefix=redis_prefix)
            version = await store.next_version()
            await store.publish(trainer.snapshot(version))
            return version
        finally:
            await client.aclose()

    return asyncio.run(go())
