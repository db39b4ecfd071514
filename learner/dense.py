"""The dense, factorised part of the match, trained with AdamW in torch.

Only the learner imports this module (and torch); the scorer computes the same logits
from the exported numpy tables with :func:`learner.scoring.dense_logits`.

The tables are large (``2**14`` users and items by default) and one batch touches a few
hundred rows, so AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization",
ICLR 2019) is applied lazily, row by row: a step gathers the touched rows as small leaf
tensors, back-propagates into them, and updates those rows' parameters and moments with
bias corrections from each row's own step count. Rows a batch does not touch are left
as they are (plain AdamW would also decay them every step).

Examples
--------
>>> import numpy as np
>>> from learner.features import DenseInputs
>>> from learner.scoring import dense_logits
>>> m = DenseLearner(user_bits=4, item_bits=4, category_bits=2, brand_bits=2, dim=3)
>>> d = DenseInputs(user=5, history=np.array([7], dtype=np.uint64),
...                 items=np.array([1, 2], dtype=np.uint64),
...                 categories=np.zeros(2, dtype=np.uint64), brands=np.zeros(2, dtype=np.uint64))
>>> torch_out = m.forward([d]).detach().numpy()
>>> bool(np.allclose(torch_out, dense_logits(m.tables(), d), atol=1e-6))
True
>>> m.step(m.forward([d]), np.array([-1.0, 1.0]))   # push item 1 up, item 2 down
>>> s = dense_logits(m.tables(), d)
>>> bool(s[0] > s[1])
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from learner.features import DenseInputs
from learner.scoring import DENSE_TABLES, dense_slots
from learner.statedict import StateDict, copy_into, prefixed, section

__all__ = ["DenseLearner", "RowAdamW"]


class RowAdamW:
    """AdamW on the rows of 2-D tables that a step touched.

    Parameters
    ----------
    tables
        ``name -> (rows, dim)`` tensors, updated in place.
    lr, betas, eps, weight_decay
        As :class:`torch.optim.AdamW`.
    """

    def __init__(self, tables: dict[str, torch.Tensor], lr: float = 0.02,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-5) -> None:
        self.tables = tables
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = {k: torch.zeros_like(t) for k, t in tables.items()}
        self.exp_avg_sq = {k: torch.zeros_like(t) for k, t in tables.items()}
        self.steps = {k: torch.zeros(t.shape[0]) for k, t in tables.items()}

    @torch.no_grad()
    def step(self, name: str, rows: torch.Tensor, grad: torch.Tensor) -> None:
        """Update ``rows`` (unique) of table ``name`` from their gradient ``grad``."""
        b1, b2 = self.betas
        p = self.tables[name]
        t = self.steps[name][rows] + 1
        self.steps[name][rows] = t
        m = self.exp_avg[name][rows].mul_(b1).add_(grad, alpha=1 - b1)
        v = self.exp_avg_sq[name][rows].mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.exp_avg[name][rows] = m
        self.exp_avg_sq[name][rows] = v
        m_hat = m / (1 - b1 ** t)[:, None]
        v_hat = v / (1 - b2 ** t)[:, None]
        w = p[rows]
        w.mul_(1 - self.lr * self.weight_decay)  # decoupled weight decay
        w.sub_(self.lr * m_hat / (v_hat.sqrt() + self.eps))
        p[rows] = w

    def state(self) -> StateDict:
        """Moments and per-row step counts of every table (copies)."""
        out: StateDict = {}
        for kind, tensors in self._buffers().items():
            out.update({f"{kind}.{k}": t.numpy().copy() for k, t in tensors.items()})
        return out

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore a :meth:`state` in place (tables of the same sizes)."""
        for kind, tensors in self._buffers().items():
            for k, t in tensors.items():
                copy_into(t.numpy(), state, f"{kind}.{k}")

    def _buffers(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq, "steps": self.steps}


class DenseLearner:
    """User, item, category and brand embeddings, learned from list-wise gradients.

    Parameters
    ----------
    user_bits, item_bits, category_bits, brand_bits
        Log2 of each hashed embedding table's rows.
    dim
        Embedding width.
    lr, weight_decay
        Of the row-wise AdamW. Adam moves a row by about ``lr`` per coordinate at each
        of its (rare) updates whatever the gradient's size, so a small step keeps users
        seen a few times from jumping about (closed loop, 50k events: share of the
        oracle's gain 71.5% at 0.02, 73.8% at 0.005).
    seed
        Initialisation seed of the item-side tables.
    """

    def __init__(self, user_bits: int = 14, item_bits: int = 14, category_bits: int = 10,
                 brand_bits: int = 10, dim: int = 16, lr: float = 0.005,
                 weight_decay: float = 1e-5, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        rows = {"dense_user": user_bits, "dense_item": item_bits,
                "dense_category": category_bits, "dense_brand": brand_bits}
        # item-side tables start small and random (a zero start would never move); user
        # vectors start at zero, so a user the model has not met scores every candidate
        # alike (dense logit 0) and keeps the upstream order
        self.params: dict[str, torch.Tensor] = {
            name: (torch.zeros(1 << rows[name], dim) if name == "dense_user"
                   else torch.randn(1 << rows[name], dim, generator=gen) * 0.05)
            for name in DENSE_TABLES}
        self.optimizer = RowAdamW(self.params, lr=lr, weight_decay=weight_decay)
        self._leaves: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def _gather(self, name: str, slots: npt.NDArray[np.int64]) -> torch.Tensor:
        """Rows ``slots`` of a table, through a leaf tensor of its unique rows (one lookup
        per table and forward pass, so each row has one gradient)."""
        assert name not in self._leaves, f"{name} gathered twice in one pass"
        uniq, local = np.unique(slots, return_inverse=True)
        rows = torch.as_tensor(uniq)
        leaf = self.params[name][rows].clone().requires_grad_()
        self._leaves[name] = (rows, leaf)
        return leaf[torch.as_tensor(local.reshape(slots.shape))]

    def _rows(self, name: str) -> int:
        return int(self.params[name].shape[0])

    def forward(self, lists: Sequence[DenseInputs]) -> torch.Tensor:
        """Dense logits of every candidate of every list, concatenated: ``(N,)``."""
        self._leaves = {}
        n_items = self._rows("dense_item")
        u_slots = np.array([dense_slots(d.user, self._rows("dense_user")) for d in lists])
        h = max((d.history.size for d in lists), default=0)
        it = np.concatenate([d.items for d in lists])
        ca = np.concatenate([d.categories for d in lists])
        br = np.concatenate([d.brands for d in lists])
        item_slots = dense_slots(it, n_items)
        if h:
            hist = np.zeros((len(lists), h), dtype=np.int64)
            mask = np.zeros((len(lists), h), dtype=np.float32)
            for r, d in enumerate(lists):
                k = d.history.size
                hist[r, :k] = dense_slots(d.history, n_items)
                mask[r, :k] = 1.0
            # one leaf for every item row this batch reads, history and candidates alike
            items_all = self._gather("dense_item", np.concatenate([hist.ravel(), item_slots]))
            hist_emb = items_all[: hist.size].reshape(len(lists), h, -1)
            v = items_all[hist.size:]
            m = torch.as_tensor(mask)
            counts = m.sum(dim=1, keepdim=True).clamp(min=1.0)
            u = self._gather("dense_user", u_slots) + (hist_emb * m[:, :, None]).sum(dim=1) / counts
        else:
            v = self._gather("dense_item", item_slots)
            u = self._gather("dense_user", u_slots)
        seg = torch.as_tensor(np.concatenate([np.full(d.items.size, r) for r, d in
                                              enumerate(lists)]).astype(np.int64))
        v = v + self._gather("dense_category", dense_slots(ca, self._rows("dense_category"))) * \
            torch.as_tensor((ca != 0).astype(np.float32))[:, None]
        v = v + self._gather("dense_brand", dense_slots(br, self._rows("dense_brand"))) * \
            torch.as_tensor((br != 0).astype(np.float32))[:, None]
        return (v * u[seg]).sum(dim=1)

    def step(self, logits: torch.Tensor, row_grad: npt.NDArray[np.float64]) -> None:
        """One AdamW step on the rows the last :meth:`forward` read, given the loss
        gradient with respect to each logit."""
        logits.backward(torch.as_tensor(row_grad, dtype=logits.dtype))
        for name, (rows, leaf) in self._leaves.items():
            if leaf.grad is not None:
                self.optimizer.step(name, rows, leaf.grad)
        self._leaves = {}

    def tables(self) -> dict[str, npt.NDArray[np.float32]]:
        """The embedding tables as numpy arrays (copies, safe to publish)."""
        return {name: p.numpy().copy() for name, p in self.params.items()}

    def tables_view(self) -> dict[str, npt.NDArray[np.float32]]:
        """The live tables as numpy views (no copy; they change with the next step)."""
        return {name: p.numpy() for name, p in self.params.items()}

    def state(self) -> StateDict:
        """The complete learner state (copies): the tables and the optimizer's moments
        and step counts. The initialisation seed is not needed: the tables are saved."""
        return {**self.tables(), **prefixed("adam", self.optimizer.state())}

    def load_state(self, state: Mapping[str, npt.NDArray[Any]]) -> None:
        """Restore a :meth:`state` in place (tables of the same sizes)."""
        for name, p in self.params.items():
            copy_into(p.numpy(), state, name)
        self.optimizer.load_state(section(state, "adam"))
