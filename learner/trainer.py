"""The online learner: training records in, model and counters updated, snapshots out.

Each ``labeled`` :class:`~streams.examples.LabeledList` carries the features its list was
ranked by; the trainer applies batches of them to the :class:`~learner.model.RankingModel`
(list-wise softmax, position-bias aware) and counts clicks; ``shown`` records count
impressions for the items' click-through rates.

Examples
--------
>>> from streams.examples import LabeledList
>>> t = Trainer(bits=12, dense=False)
>>> ex = LabeledList(impression_id="i", user_id="u", session_id=None, query=None,
...                  item_ids=["a", "b", "c"], positions=[1, 2, 3], labels=[0, 0, 1],
...                  weight=1.0, source="x/0/1")
>>> for _ in range(20):
...     learned = t.learn_batch([ex])
>>> snap = t.snapshot(version=1, now_ms=0)
>>> from serving.model import ServingModel
>>> from learner.features import RankContext
>>> ServingModel(snap).rank_order(RankContext("u"), ["a", "b", "c"]).tolist()
[2, 1, 0]

``a`` falls below ``b``: skipped at the top, where it was surely seen, is stronger
evidence against it than ``b``'s skip at position 2.
>>> t.examples
20

Each record comes back with its features and the logits the model gave its list just
before learning it (progressive validation without a second forward pass):

>>> before = t.score(ex)
>>> (item,) = t.learn_batch([ex])
>>> item.record is ex, bool((item.logits == before).all()), len(item.block)
(True, True, 3)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.features import FeatureBlock, RankContext, featurize
from learner.hashing import _hash_str
from learner.model import ListExample, RankingModel
from learner.snapshot import Snapshot
from learner.statedict import StateDict, int_array, prefixed, scalar, section
from learner.stats import ItemStats
from streams.examples import LabeledList

__all__ = ["Learned", "Trainer", "block_of"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Learned:
    """What :meth:`Trainer.learn_batch` did with one record, for progressive validation.

    ``block`` is the record's decoded features (``None`` for a ``shown`` record and for a
    record the trainer skipped); ``logits`` the relevance logits of its list with the
    model *before* the update that learned it (``None`` where the model learned nothing
    from the list: shown, skipped, no click, or a single item).
    """

    record: LabeledList
    block: FeatureBlock | None = None
    logits: npt.NDArray[np.float64] | None = None


def block_of(rec: LabeledList, bits: int) -> FeatureBlock:
    """The features a record was ranked by (recomputed without state when it has none),
    folded into ``2**bits`` weights: an index hashed with more bits keeps its low ``bits``,
    which is exactly the index the same hash gets at ``bits`` (``learner.hashing.to_index``).

    >>> from learner.features import featurize
    >>> wide = featurize(RankContext("u", "s", "q"), ["a", "b"], bits=20)
    >>> rec = LabeledList("i", "u", "s", "q", ["a", "b"], [1, 2], [1.0, 0.0], 1.0, "t/0/1",
    ...                   features=wide.to_json())
    >>> bool((block_of(rec, 12).index == featurize(RankContext("u", "s", "q"), ["a", "b"],
    ...                                             bits=12).index).all())
    True
    """
    if rec.features is not None:
        block = FeatureBlock.from_json(rec.features)
        if block.index.size and int(block.index.max()) >> bits:
            block = replace(block, index=block.index & ((1 << bits) - 1))
        return block
    return featurize(RankContext(rec.user_id, rec.session_id, rec.query), rec.item_ids, bits)


class Trainer:
    """Owns the model and the item counters; applies training records to them.

    Parameters
    ----------
    bits
        Log2 of the sparse hashed weight space.
    alpha, beta, l1, l2
        FTRL-Proximal hyper-parameters.
    position_bias
        Learn the examination model (see :mod:`learner.model`).
    dense
        Train the dense part (needs torch).
    stats_bits, stats_half_life_ms
        Size and decay of the item counters.
    """

    def __init__(self, bits: int = 20, *, alpha: float = 0.1, beta: float = 1.0,
                 l1: float = 0.0, l2: float = 1.0, position_bias: bool = True,
                 dense: Any = True, stats_bits: int = 16,
                 stats_half_life_ms: float = 6 * 3600 * 1000) -> None:
        self.bits = bits
        #: The settings a saved state is only valid with (see :meth:`load_state`).
        self.config: dict[str, Any] = {
            "hash_bits": bits, "alpha": alpha, "beta": beta, "l1": l1, "l2": l2,
            "position_bias": position_bias, "dense": bool(dense), "stats_bits": stats_bits,
            "stats_half_life_ms": stats_half_life_ms}
        self.model = RankingModel(bits, alpha=alpha, beta=beta, l1=l1, l2=l2,
                                  position_bias=position_bias, dense=dense)
        self.stats = ItemStats(bits=stats_bits, half_life_ms=stats_half_life_ms)
        #: Labelled lists applied so far.
        self.examples = 0
        #: Shown lists counted so far.
        self.shown = 0
        #: Labelled records skipped because they could not be applied (this process).
        self.skipped = 0
        #: Updates since the last snapshot was taken.
        self.dirty = 0
        self.last_update_ms: int | None = None

    def learn_list(self, rec: LabeledList) -> None:
        """Apply one record."""
        self.learn_batch([rec])

    def learn_batch(self, records: Sequence[LabeledList]) -> list[Learned]:
        """Apply a batch of records: counters first, then one model update.

        A record whose features cannot be decoded, or whose labels and positions do not
        fit its list, is skipped (logged, counted in :attr:`skipped`); the others are
        applied, so one bad record costs only itself.

        Returns one :class:`Learned` per record, in order: its decoded block and its
        list's logits from the update's own forward pass, taken before the update. The
        batch is one update, so these are the logits of the model before the batch (as
        :meth:`score` gave them then, see :meth:`RankingModel.learn
        <learner.model.RankingModel.learn>` for the rounding), which has learned none of
        the batch's lists: progressive validation without scoring the lists again."""
        batch: list[ListExample] = []
        # per record: its block and its place in ``batch`` (-1: not given to the model)
        decoded: list[tuple[FeatureBlock | None, int]] = []
        counts: list[tuple[npt.NDArray[np.uint64], npt.ArrayLike, npt.ArrayLike, int]] = []
        for rec in records:
            ts = rec.ts if rec.ts is not None else int(time.time() * 1000)
            if rec.kind == "shown":
                hashes = np.fromiter((_hash_str(f"item={i}") for i in rec.item_ids),
                                     dtype=np.uint64, count=len(rec.item_ids))
                counts.append((hashes, np.ones(len(hashes)), np.zeros(len(hashes)), ts))
                self.shown += 1
                decoded.append((None, -1))
                continue
            try:
                block = block_of(rec, self.bits)
                labels = np.asarray(rec.labels, dtype=np.float64)
                positions = np.asarray(rec.positions)
                if not len(block) == labels.size == positions.size == len(rec.item_ids):
                    raise ValueError(f"{len(rec.item_ids)} items, {len(block)} feature rows, "
                                     f"{labels.size} labels, {positions.size} positions")
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                self.skipped += 1
                log.warning("learn: skipped record %s (%s: %s)", rec.source,
                            type(exc).__name__, exc)
                decoded.append((None, -1))
                continue
            hashes = (block.dense.items if block.dense is not None else np.fromiter(
                (_hash_str(f"item={i}") for i in rec.item_ids), dtype=np.uint64))
            counts.append((hashes, np.zeros(len(hashes)), labels, ts))
            decoded.append((block, len(batch)))
            batch.append(ListExample(block, positions=positions, labels=labels,
                                     weight=rec.weight))
            self.examples += 1
        self.stats.record_many(counts)  # the same as one record() each, in order
        logits = self.model.learn(batch) if batch else []
        self.dirty += len(records)
        self.last_update_ms = int(time.time() * 1000)
        return [Learned(rec, block, logits[at] if at >= 0 else None)
                for rec, (block, at) in zip(records, decoded)]

    def state(self) -> StateDict:
        """The complete learning state (copies): the model's, the item counters and the
        ``examples`` and ``shown`` counters. Applying the same records to a trainer
        restored from it gives the same state as applying them to this one."""
        return {**prefixed("model", self.model.state()),
                **prefixed("stats", self.stats.state()),
                "examples": int_array(self.examples), "shown": int_array(self.shown)}

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore a :meth:`state` in place (a trainer built with the same settings)."""
        self.model.load_state(section(state, "model"))
        self.stats.load_state(section(state, "stats"))
        self.examples = scalar(state, "examples") or 0
        self.shown = scalar(state, "shown") or 0

    def score(self, rec: LabeledList) -> np.ndarray:
        """Relevance logits of a record's list with the current model (before learning it)."""
        return self.model.logits(block_of(rec, self.bits))

    def snapshot(self, version: int, now_ms: int | None = None) -> Snapshot:
        """The served parameters as a snapshot; resets the dirty counter."""
        arrays = self.model.arrays()
        arrays["stats_shown"] = self.stats.shown.copy()
        arrays["stats_clicked"] = self.stats.clicked.copy()
        meta: dict[str, Any] = {
            "hash_bits": self.bits, "model": "softmax-ftrl+dense",
            "position_bias": self.model.position_bias, "dense": self.model.dense is not None,
            "stats_bits": self.stats.bits, "stats_half_life_ms": self.stats.half_life_ms,
            "stats_ts": self.stats.ts, "shown": self.shown}
        self.dirty = 0
        return Snapshot(version=version,
                        created_ms=now_ms if now_ms is not None else int(time.time() * 1000),
                        examples=self.examples, arrays=arrays, meta=meta)
