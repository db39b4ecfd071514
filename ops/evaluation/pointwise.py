"""Pointwise baselines on the same features: River's FTRL logistic regression and Vowpal
Wabbit.

Each candidate of a list becomes one example built from the list's
:class:`~learner.features.FeatureBlock`, one token per column: a hashed cross column
(:data:`~learner.features.CROSS_FEATURES`, and the ``user_x_vector:k`` columns) is the token
``"name=index"`` with its value (left out when 0), a numeric column is ``"name"`` with its
value. A labelled record teaches every shown item, label 1 for the engaged one and 0 for
the others, weighted by the interaction (click 1, cart 2, purchase 3); ``shown`` records
teach nothing. A list's choice probabilities are the predicted click probabilities
normalised over the list, ``p_i / sum p``.

* River: ``linear_model.LogisticRegression`` with ``optim.FTRLProximal`` (McMahan et al.,
  "Ad click prediction: a view from the trenches", KDD 2013).
* Vowpal Wabbit: logistic loss, its default adaptive, normalised, importance-invariant
  SGD (Karampatziakis and Langford, "Online importance weight aware updates", 2011), or
  ``--ftrl`` through ``vw_args``.

Examples
--------
>>> from learner.features import RankContext, featurize
>>> block = featurize(RankContext("u", query="tent"), ["a", "b"], bits=12,
...                   base_scores=[2.0, 1.0])
>>> x = tokens(block)[0]
>>> sorted(k for k in x if k.startswith("query_x_item"))
['query_x_item=1782']
>>> x["upstream_rank"]
1.0
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.features import CROSS_FEATURES, FeatureBlock
from streams.examples import LabeledList

__all__ = ["VW_ARGS", "RiverRanker", "VWRanker", "tokens"]

F64 = npt.NDArray[np.float64]
_CROSS = frozenset(CROSS_FEATURES)

#: Vowpal Wabbit's options for the baseline: the best of a sweep (default SGD with learning
#: rates 0.1, 0.5, 2; ``--ftrl`` with its defaults and with alpha 0.1; ``--coin``) by
#: MRR (IPS) on a held-out simulated log (seed 1, see docs/evaluation.md); ``-b`` is added
#: from the ranker's ``bits``.
VW_ARGS = "--loss_function logistic --link logistic -l 0.1"


def tokens(block: FeatureBlock) -> list[dict[str, float]]:
    """One ``{token: value}`` per candidate (zero values left out)."""
    kinds = [name in _CROSS or "_x_" in name for name in block.names]  # user_x_vector:k too
    out: list[dict[str, float]] = []
    for idx_row, val_row in zip(block.index.tolist(), block.value.tolist()):
        x: dict[str, float] = {}
        for name, cross, idx, val in zip(block.names, kinds, idx_row, val_row):
            if val == 0.0:
                continue
            x[f"{name}={idx}" if cross else name] = float(val)
        out.append(x)
    return out


def _normalised(p: F64) -> F64:
    total = p.sum()
    return p / total if total > 0 else np.full(p.size, 1.0 / p.size)


def _examples(records: Sequence[LabeledList], blocks: Sequence[FeatureBlock | None]
              ) -> list[tuple[dict[str, float], float, float]]:
    out = []
    for rec, block in zip(records, blocks):
        if rec.kind != "labeled" or block is None:
            continue
        for x, y in zip(tokens(block), rec.labels):
            out.append((x, 1.0 if y > 0 else 0.0, rec.weight))
    return out


class RiverRanker:
    """River logistic regression with FTRL-Proximal, one example per shown item.

    Parameters
    ----------
    alpha, beta, l1, l2
        FTRL-Proximal's (river's names and meaning).
    """

    name = "river"

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, l1: float = 0.0,
                 l2: float = 1.0) -> None:
        from river import linear_model, optim

        self.model = linear_model.LogisticRegression(
            optimizer=optim.FTRLProximal(alpha=alpha, beta=beta, l1=l1, l2=l2))

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """Click probabilities, and them normalised over the list."""
        p = np.array([self.model.predict_proba_one(x)[True] for x in tokens(block)])
        return p, _normalised(p)

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """``learn_one`` on every shown item of every labelled record."""
        for x, y, w in _examples(records, blocks):
            self.model.learn_one(x, y == 1.0, w=w)


def _vw_name(token: str) -> str:
    # VW reads "name:value", "|namespace" and whitespace: keep them out of names
    return token.replace(":", ";").replace("|", "/").replace(" ", "_")


class VWRanker:
    """Vowpal Wabbit logistic regression, one example per shown item.

    Parameters
    ----------
    bits
        ``-b``: log2 of VW's own hashed weight space.
    vw_args
        The rest of VW's command line (:data:`VW_ARGS` by default).
    """

    name = "vw"

    def __init__(self, bits: int = 20, vw_args: str = VW_ARGS) -> None:
        import vowpalwabbit

        self.args = f"{vw_args} -b {bits}"
        self.vw: Any = vowpalwabbit.Workspace(self.args, quiet=True)

    @staticmethod
    def _line(x: dict[str, float], label: str = "") -> str:
        feats = " ".join(_vw_name(k) if v == 1.0 else f"{_vw_name(k)}:{v:.6g}"
                         for k, v in x.items())
        return f"{label}|f {feats}"

    def score_many(self, item_ids: Sequence[str], block: FeatureBlock) -> tuple[F64, F64]:
        """Click probabilities (VW's logistic link), and them normalised over the list."""
        p = np.array([float(self.vw.predict(self._line(x))) for x in tokens(block)])
        p = np.clip(p, 1e-9, 1.0 - 1e-9)
        return p, _normalised(p)

    def learn_many(self, records: Sequence[LabeledList],
                   blocks: Sequence[FeatureBlock | None]) -> None:
        """``learn`` on every shown item of every labelled record (labels -1 / 1, the
        record's weight as importance)."""
        for x, y, w in _examples(records, blocks):
            self.vw.learn(self._line(x, f"{1 if y == 1.0 else -1} {w:g} "))

    def close(self) -> None:
        """Release VW's workspace."""
        self.vw.finish()

