"""Apply a log partition's training records to a trainer, exactly once in effect.

The examples topic has one partition, and the learner's state is made a function of that
log alone, so that a learner restarted from a checkpoint reaches, record for record, the
state an uninterrupted one has:

* **Batches are cut at fixed offsets.** The records at offsets ``[k B, (k+1) B)`` form
  batch ``k`` (``B`` = ``batch_size``), applied with one :meth:`Trainer.learn_batch
  <learner.trainer.Trainer.learn_batch>` when it is complete: when its last offset
  arrives, or the first offset of a later batch. How fast records arrive, how the
  consumer's fetches split them, and where a crash happened, change nothing.
* **Duplicates are skipped.** A record whose key (:func:`learner.dedupe.record_key`: its
  kind and source event) was seen earlier in its batch, or is among the keys of the last
  ``window`` distinct records of earlier batches, is not applied again: the join
  upstream is at-least-once and may re-send records after a crash. Undecodable records
  (``None``) are skipped too.
* **The open batch is applied provisionally.** For freshness, :meth:`apply_pending`
  applies the records of the batch that is not complete yet (the consumer calls it when
  the log has nothing more for now). The state before them is kept; when the batch
  grows, the learner goes back to that state and applies the batch as one (a
  provisional update that already covered the whole batch stands), so the committed
  state never depends on when this happened.
* **Each record learned is reported once.** ``on_learned``, when set, gets what the
  trainer did with each record (:class:`~learner.trainer.Learned`: its features and its
  list's logits before the update) the first time the record is applied: a batch redone
  after a provisional update reports only the records the provisional one did not have
  (it scored those from the same committed state, so with the same logits). Duplicates
  and undecodable records are not applied, so not reported. The monitor's progressive
  validation hangs here (:meth:`monitor.online.LearnerMonitor.on_learned`); a record
  applied again after a :meth:`restore` is reported again.
* **A checkpoint is the committed state.** :meth:`checkpoint` returns the state after the
  last complete batch with its ``next_offset`` and the dedupe window; :meth:`restore`
  puts a learner back there. The consumer seeks to ``next_offset`` and the records after
  it are applied again, in the same batches.

Examples
--------
>>> from streams.examples import LabeledList
>>> from learner.trainer import Trainer
>>> def rec(i, source=None):
...     return LabeledList(impression_id=f"i{i}", user_id="u", session_id=None, query=None,
...                        item_ids=["a", "b"], positions=[1, 2], labels=[0.0, 1.0],
...                        weight=1.0, source=source or f"interactions/0/{i}", ts=i)
>>> learner = LogLearner(Trainer(bits=8, dense=False, stats_bits=4), batch_size=4)
>>> [learner.offer(o, rec(o)) for o in range(3)]      # batch 0 is open
[0, 0, 0]
>>> learner.apply_pending(), learner.trainer.examples, learner.checkpoint()
(3, 3, None)
>>> learner.offer(3, rec(3, source="interactions/0/1"))   # a duplicate completes batch 0
3
>>> learner.trainer.examples, learner.duplicates, learner.checkpoint().next_offset
(3, 1, 4)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from learner.checkpoint import Checkpoint, CheckpointError, check_config
from learner.dedupe import RecentIds, record_key
from learner.statedict import StateDict, StateError
from learner.trainer import Learned, Trainer
from streams.examples import LabeledList

__all__ = ["LogLearner", "OnLearned"]

log = logging.getLogger("streamrank.learner")

#: Called with what the trainer did with the records an update applied for the first
#: time, in log order, after the update (the logits in it are from before it).
OnLearned = Callable[[Sequence[Learned]], None]


class LogLearner:
    """Offset-aligned, deduplicated, checkpointable learning from one log partition.

    Parameters
    ----------
    trainer
        The trainer to update (in place: publishers keep their reference to it).
    batch_size
        ``B``: batch ``k`` is the records at offsets ``[k B, (k+1) B)``.
    window
        How many distinct record keys are remembered to recognise duplicates.
    topic, partition
        Which log this is (written into checkpoints).
    on_learned
        Optional hook, see :data:`OnLearned` (an attribute: may be set later). An
        exception from it is logged and does not stop learning.
    """

    def __init__(self, trainer: Trainer, batch_size: int = 256, window: int = 100_000,
                 topic: str = "", partition: int = 0,
                 on_learned: OnLearned | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        self.trainer = trainer
        self.batch_size = batch_size
        self.window = window
        self.topic = topic
        self.partition = partition
        self.on_learned = on_learned
        self._initial = trainer.state()  # for a restore without a checkpoint
        self.seen = RecentIds(window)
        #: The first offset the committed state has not applied (None: nothing yet).
        self.next_offset: int | None = None
        #: The offset after the last record offered (records below it are ignored).
        self.position: int | None = None
        self._pending: list[tuple[LabeledList, int]] = []  # records and their keys
        self._junk = 0  # undecodable records in the open batch
        self._block: int = -1
        self._base: StateDict | None = None  # the committed state, while provisional
        self._provisional = 0  # pending records applied provisionally
        self._reported = 0  # pending records reported to on_learned
        #: Records skipped as duplicates in committed batches.
        self.duplicates = 0
        #: Provisional updates, and batches redone as one after part of them was applied
        #: provisionally (where batches cut by time would have given another state).
        self.provisional_updates = 0
        self.redone = 0

    @property
    def pending(self) -> int:
        """Records of the open batch (not in the committed state)."""
        return len(self._pending) + self._junk

    def offer(self, offset: int, rec: LabeledList | None) -> int:
        """Take the record at ``offset`` (``None`` if it could not be decoded), in offset
        order; return how many records were committed by it (batches it completed)."""
        if self.position is not None and offset < self.position:
            return 0  # already taken (a re-fetch after a seek)
        committed = 0
        block = offset // self.batch_size
        if self.pending and block != self._block:
            committed += self._commit()
        if rec is not None:
            self._pending.append((rec, record_key(rec)))
        else:
            self._junk += 1
        self._block = block
        self.position = offset + 1
        if self.position % self.batch_size == 0:
            committed += self._commit()
        return committed

    def _fresh(self) -> tuple[list[LabeledList], list[int], int]:
        """The open batch's records that count, with their keys: not among the keys
        remembered when the batch began, nor earlier in the batch; and how many of them
        were reported by a provisional update (they come first, and stay the same as the
        batch grows: the remembered keys change only when a batch is committed)."""
        fresh: list[LabeledList] = []
        keys: list[int] = []
        in_batch: set[int] = set()
        reported = 0
        for i, (rec, key) in enumerate(self._pending):
            if key not in self.seen and key not in in_batch:
                in_batch.add(key)
                fresh.append(rec)
                keys.append(key)
                reported += i < self._reported
        return fresh, keys, reported

    def apply_pending(self) -> int:
        """Apply the open batch provisionally (see the module docstring); return how many
        of its records are new since the last call (0: nothing to do)."""
        if len(self._pending) == self._provisional:
            return 0
        if self._base is None:
            self._base = self.trainer.state()
        else:
            self.trainer.load_state(self._base)
        fresh, _, reported = self._fresh()
        if self._learn(fresh, reported):
            self._reported = len(self._pending)
        new = len(self._pending) - self._provisional
        self._provisional = len(self._pending)
        self.provisional_updates += 1
        return new

    def _commit(self) -> int:
        """Apply the open batch for good: it is complete."""
        fresh, keys, reported = self._fresh()
        if self._base is not None and self._provisional == len(self._pending):
            pass  # the provisional update applied this very batch: it stands
        else:
            if self._base is not None:  # the batch grew since: undo, then apply it whole
                self.trainer.load_state(self._base)
                self.redone += 1
            self._learn(fresh, reported)
        for key in keys:
            self.seen.add(key)
        self.duplicates += len(self._pending) - len(fresh)
        self._base = None
        self._pending = []
        self._junk = 0
        self._provisional = 0
        self._reported = 0
        self.next_offset = (self._block + 1) * self.batch_size
        return len(fresh)

    def _learn(self, records: list[LabeledList], reported: int = 0) -> bool:
        """One update, then :attr:`on_learned` with all but the first ``reported``
        records (reported by an earlier, provisional, update); whether the update went
        through. A record the trainer cannot apply is skipped by the trainer
        (:meth:`Trainer.learn_batch <learner.trainer.Trainer.learn_batch>`); a batch that
        still fails is logged and left as far as it got (the same in every replay, so the
        state stays a function of the log), and not reported."""
        try:
            learned = self.trainer.learn_batch(records)
        except Exception:
            log.exception("learn: could not apply a batch of %d records", len(records))
            return False
        if self.on_learned is not None and len(learned) > reported:
            try:
                self.on_learned(learned[reported:])
            except Exception:  # the hook (the monitor) must never stop the learner
                log.exception("learn: the on_learned hook failed")
        return True

    def checkpoint(self) -> Checkpoint | None:
        """The committed state with its position; ``None`` before the first batch."""
        if self.next_offset is None:
            return None
        state = self._base if self._base is not None else self.trainer.state()
        return Checkpoint(next_offset=self.next_offset, state=state, seen=self.seen.keys(),
                          config=dict(self.trainer.config), topic=self.topic,
                          partition=self.partition, batch_size=self.batch_size)

    def restore(self, ckpt: Checkpoint | None, key: str = "the checkpoint") -> None:
        """Go back to ``ckpt`` (``None``: the initial state, before any record); the
        caller then reads the log from :attr:`next_offset` (``None``: its start).

        Raises :class:`~learner.checkpoint.CheckpointError` when ``ckpt`` was made with
        other learner settings (``key`` names where it is stored, for the message)."""
        if ckpt is not None:
            check_config(ckpt, self.trainer.config, key)
        try:
            self.trainer.load_state(ckpt.state if ckpt is not None else self._initial)
        except StateError as exc:
            raise CheckpointError(f"the learner checkpoint in {key} does not fit this "
                                  f"learner: {exc}") from None
        self.seen = RecentIds(self.window, ckpt.seen if ckpt is not None else ())
        self.next_offset = self.position = ckpt.next_offset if ckpt is not None else None
        self._pending = []
        self._junk = 0
        self._block = -1
        self._base = None
        self._provisional = 0
        self._reported = 0
