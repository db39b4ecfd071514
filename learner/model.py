"""The ranking model: a sparse and a dense match, a softmax over the shown list, and an
examination model for position bias.

Training objective, for one shown list with clicked item ``c``::

    P(c | list) = e(pos_c) exp(S_c) / sum_i e(pos_i) exp(S_i)

``S_i = sparse_i + dense_i`` is the relevance logit (:mod:`learner.scoring`) and
``e(p) = exp(b_p)`` the probability-like weight with which position ``p`` is examined,
learned jointly (``b_1 = 0`` fixes the scale). This is the factorisation of PAL (Guo et
al., "PAL: a position-bias aware learning framework for CTR prediction in live
recommender systems", RecSys 2019), ``P(click) = P(seen | position) x P(relevant | user,
item)``, applied to the list-wise choice: the position part explains the clicks that the
top of the list gets for being on top, so the relevance part does not have to. Only
``S`` is served. With ``position_bias=False`` the same model learns without ``b`` and
absorbs position effects into ``S``.

Gradients of the list's cross-entropy with respect to each logit, ``w (p_i - y_i)``,
drive all three learners: FTRL-Proximal on the sparse weights, AdamW on the dense
embeddings, Adagrad on ``b``.

Examples
--------
>>> import numpy as np
>>> from learner.features import RankContext, featurize
>>> m = RankingModel(bits=16, dense=False)
>>> block = featurize(RankContext("u-1"), ["a", "b", "c"], bits=16)
>>> ex = ListExample(block, positions=np.array([1, 2, 3]), labels=np.array([0., 0., 1.]))
>>> for _ in range(30):
...     before = m.logits(block)
...     scored = m.learn([ex])  # the logits its update started from
>>> int(np.argmax(m.logits(block))), bool((scored[0] == before).all())
(2, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.features import FeatureBlock
from learner.ftrl import FTRLProximal
from learner.scoring import dense_logits
from learner.statedict import StateDict, copy_into, prefixed, section

__all__ = ["ListExample", "RankingModel", "segment_softmax", "stack_blocks"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ListExample:
    """One shown list with its outcome: ``labels`` (n,) and 1-based ``positions`` (n,)."""

    block: FeatureBlock
    positions: npt.NDArray[np.integer]
    labels: npt.NDArray[np.floating]
    weight: float = 1.0


def segment_softmax(t: F64, starts: npt.NDArray[np.int64]) -> F64:
    """Softmax of ``t`` within each segment beginning at ``starts`` (concatenated lists).

    >>> segment_softmax(np.array([0.0, 0.0, 1.0, 1.0, 1.0]), np.array([0, 2])).round(3).tolist()
    [0.5, 0.5, 0.333, 0.333, 0.333]
    """
    sizes = np.diff(np.append(starts, t.size))
    mx = np.repeat(np.maximum.reduceat(t, starts), sizes)
    e = np.exp(t - mx)
    return e / np.repeat(np.add.reduceat(e, starts), sizes)


def stack_blocks(blocks: Sequence[FeatureBlock]
                 ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """The rows of several lists' blocks as one ``(rows, width)`` index and value array.

    Lists can have different numbers of columns (request features, item-vector crosses
    are only there when the request or the items have them); narrower blocks are padded
    with value-0 columns, which add nothing to a logit and get no update.

    >>> import numpy as np
    >>> a = FeatureBlock(np.array([[1, 2]]), np.array([[1.0, 1.0]], dtype=np.float32), ("x", "y"))
    >>> b = FeatureBlock(np.array([[3]]), np.array([[0.5]], dtype=np.float32), ("x",))
    >>> index, value = stack_blocks([a, b])
    >>> index.tolist(), value.tolist()
    ([[1, 2], [3, 0]], [[1.0, 1.0], [0.5, 0.0]])
    """
    width = max(b.index.shape[1] for b in blocks)
    if all(b.index.shape[1] == width for b in blocks):
        return (np.concatenate([b.index for b in blocks]),
                np.concatenate([b.value for b in blocks]))
    rows = sum(len(b) for b in blocks)
    index = np.zeros((rows, width), dtype=np.int64)
    value = np.zeros((rows, width), dtype=np.float32)
    at = 0
    for b in blocks:
        n, k = b.index.shape
        index[at:at + n, :k] = b.index
        value[at:at + n, :k] = b.value
        at += n
    return index, value


class RankingModel:
    """Sparse (FTRL) + dense (AdamW) relevance, softmax list loss, learned examination.

    Parameters
    ----------
    bits
        Log2 of the sparse hashed weight space.
    alpha, beta, l1, l2
        FTRL-Proximal hyper-parameters.
    position_bias
        Learn the examination model (PAL-style); ``False`` is the uncorrected ablation.
    dense
        ``True`` for a :class:`~learner.dense.DenseLearner` with default sizes, an
        instance, or ``False`` for the sparse part only (then torch is not imported).
    max_positions
        Positions beyond this share the last examination weight.
    position_lr
        Adagrad step size of the examination weights.
    """

    def __init__(self, bits: int = 20, *, alpha: float = 0.1, beta: float = 1.0,
                 l1: float = 0.0, l2: float = 1.0, position_bias: bool = True,
                 dense: Any = True, max_positions: int = 64, position_lr: float = 0.1) -> None:
        self.bits = bits
        self.ftrl = FTRLProximal(bits=bits, alpha=alpha, beta=beta, l1=l1, l2=l2)
        if dense is True:
            from learner.dense import DenseLearner

            dense = DenseLearner()
        self.dense = dense or None
        self.position_bias = position_bias
        self.log_examination = np.zeros(max_positions, dtype=np.float64)
        self._pos_g2 = np.zeros(max_positions, dtype=np.float64)
        self.position_lr = position_lr

    def logits(self, block: FeatureBlock) -> F64:
        """Relevance logits ``S`` of a block's candidates: what the scorer ranks by."""
        # the same formula as learner.scoring.sparse_logits, with the weights derived
        # from FTRL's state for just the coordinates the block touches
        s = (self.ftrl.weights_at(block.index) * block.value).sum(axis=1)
        if self.dense is not None and block.dense is not None:
            s = s + dense_logits(self.dense.tables_view(), block.dense)
        return s

    def _pos_index(self, positions: npt.NDArray[np.integer]) -> npt.NDArray[np.int64]:
        return np.clip(np.asarray(positions, dtype=np.int64) - 1, 0,
                       self.log_examination.size - 1)

    def learn(self, batch: Sequence[ListExample]) -> list[F64 | None]:
        """One update from a batch of shown lists (lists without a click, or of one item,
        are skipped).

        Returns each list's relevance logits ``S`` as :meth:`logits` gave them just before
        this update (``None`` for a skipped list), in the order of ``batch``: the forward
        pass of the update, handed out so that progressive validation need not score the
        lists again (:mod:`monitor.online`). The whole batch is one update, so every
        list's logits are those of the model before the batch, which has learned none of
        its lists. The sparse part is :meth:`logits`'s sum (bit for bit when the batch's
        blocks have the same width; padded narrower blocks may round differently in the
        last bit); the dense part comes from the training forward pass (torch, float32)
        where :meth:`logits` computes it in float64 from the same float32 tables, so the
        two agree to float32 precision.
        """
        out: list[F64 | None] = [None] * len(batch)
        used = [k for k, ex in enumerate(batch)
                if float(np.sum(ex.labels)) > 0 and len(ex.block) > 1]
        if not used:
            return out
        batch = [batch[k] for k in used]
        index, value = stack_blocks([ex.block for ex in batch])
        sizes = np.array([len(ex.block) for ex in batch])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        labels = np.concatenate([np.asarray(ex.labels, dtype=np.float64) for ex in batch])
        y = labels / np.repeat(np.add.reduceat(labels, starts), sizes)
        weight = np.repeat(np.array([ex.weight for ex in batch], dtype=np.float64), sizes)
        pos = self._pos_index(np.concatenate([ex.positions for ex in batch]))

        t = (self.ftrl.weights_at(index) * value).sum(axis=1)
        dense_t = None
        if self.dense is not None and all(ex.block.dense is not None for ex in batch):
            dense_t = self.dense.forward([ex.block.dense for ex in batch])
            t = t + dense_t.detach().numpy().astype(np.float64)
        bounds = starts.tolist() + [t.size]  # (slices: a tenth of np.split's time)
        for k, lo, hi in zip(used, bounds, bounds[1:]):
            out[k] = t[lo:hi]  # views of t, which is not written to below
        if self.dense is not None and dense_t is None:
            # a batch where some lists lack dense inputs learns without the dense part;
            # the logits handed out are still what serving computes (see logits)
            tables = self.dense.tables_view()
            for k, ex in zip(used, batch):
                if ex.block.dense is not None:
                    out[k] = out[k] + dense_logits(tables, ex.block.dense)
        if self.position_bias:
            t = t + self.log_examination[pos]
        g = weight * (segment_softmax(t, starts) - y)

        self.ftrl.step(index, value, g)
        if dense_t is not None:
            self.dense.step(dense_t, g)
        if self.position_bias:
            gp = np.bincount(pos, weights=g, minlength=self.log_examination.size)
            self._pos_g2 += gp * gp
            self.log_examination -= self.position_lr * gp / (np.sqrt(self._pos_g2) + 1e-8)
            self.log_examination -= self.log_examination[0]  # b_1 = 0
        return out

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """What the scorer needs, as numpy arrays (for a snapshot)."""
        out: dict[str, npt.NDArray[Any]] = {"w": self.ftrl.weights(),
                                            "log_examination":
                                                self.log_examination.astype(np.float32)}
        if self.dense is not None:
            out.update(self.dense.tables())
        return out

    def state(self) -> StateDict:
        """Everything learning changes (copies): FTRL's ``z`` and ``n``, the examination
        weights and their Adagrad sums, the dense part with its optimizer. What a
        checkpoint saves (:mod:`learner.checkpoint`)."""
        out = {**prefixed("ftrl", self.ftrl.state()),
               "log_examination": self.log_examination.copy(), "pos_g2": self._pos_g2.copy()}
        if self.dense is not None:
            out.update(prefixed("dense", self.dense.state()))
        return out

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore a :meth:`state` in place (a model built with the same settings)."""
        self.ftrl.load_state(section(state, "ftrl"))
        copy_into(self.log_examination, state, "log_examination")
        copy_into(self._pos_g2, state, "pos_g2")
        if self.dense is not None:
            self.dense.load_state(section(state, "dense"))

