"""The reference learners, Vowpal Wabbit and River, fed exactly our features.

Every peer learns from and predicts on the :class:`~learner.features.FeatureBlock` our
shared features computed for the list (the worker's, with the user's and the session's
state and the catalog), turned into one ``{token: value}`` row per candidate by
:func:`ops.evaluation.pointwise.tokens`, as the evaluation harness does: a hashed cross
column is the token ``"name=index"`` (value 1, or the component for the vector crosses),
a numeric column is ``"name"`` with its value; zeros are left out.

* **Vowpal Wabbit** (``vowpalwabbit.Workspace``): the row as one namespace ``f`` of
  ``token:value`` features, ``-b`` the same hash bits as ours, logistic loss, VW's
  default learner (adaptive, normalised, invariant SGD); VW's constant is the bias.
* **River** (``linear_model.LogisticRegression(optimizer=optim.FTRLProximal())``, with
  our FTRL hyper-parameters): the row dict as it is; River's intercept is the bias.

Both APIs take one row at a time, so a list of ``n`` candidates is ``n`` calls; turning
the block into rows is part of each peer's cost. :func:`feature_coverage` checks that
the peers get every feature our code declares (like for like).

Examples
--------
>>> from learner.features import RankContext, featurize
>>> block = featurize(RankContext("u-1", "s-9", "Trail  Shoes"), ["sku-1", "sku-2"], bits=12,
...                   base_scores=[2.0, 1.0])
>>> VWPeer.lines(block, [1.0, 0.0], 1.0)[0].split(" |f ")[0]
'1 1'
>>> sorted(RiverPeer.rows(block)[0])[:3]
['base_score_z', 'item=1459', 'query_x_item=2824']
>>> vw = VWPeer(bits=18)
>>> for _ in range(30):
...     vw.learn_block(block, [1.0, 0.0], 1.0)
>>> s = vw.predict_block(block); bool(s[0] > 0.5 > s[1])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from learner import features as our_features
from learner.features import FeatureBlock
from ops.evaluation.pointwise import tokens

__all__ = ["RiverPeer", "VWPeer", "coverage_figure", "feature_coverage"]


def feature_coverage() -> dict[str, Any]:
    """Our current feature names, the peers', and what the peers do not get (nothing:
    they read every column of our blocks)."""
    ours = tuple(our_features.FEATURE_NAMES)
    return {"ours": list(ours), "peers": list(ours), "missing_in_peers": [],
            "like_for_like": True, "how": "every column of our FeatureBlock, as tokens"}


def coverage_figure() -> Any:
    """A table row that says whether the peers get all our features (a validity check)."""
    from bench.results import Figure, Target

    missing = feature_coverage()["missing_in_peers"]
    return Figure("our feature templates the peers do not get", "", float(len(missing)),
                  target=Target("ours", "<=", 0, "0 (like for like)"),
                  note=("like for like: the peers read our feature blocks" if not missing
                        else "not like for like: " + ", ".join(missing)))


def _vw_token(s: str) -> str:
    # VW splits features on spaces and reads ':' and '|' as syntax
    return s.replace(" ", "_").replace(":", "_").replace("|", "_")


class VWPeer:
    """Vowpal Wabbit over our feature rows (see the module docstring)."""

    def __init__(self, bits: int = 20, extra: str = "") -> None:
        from vowpalwabbit import Workspace

        self.args = self.arguments(bits, extra)
        self.vw = Workspace(self.args)

    @staticmethod
    def arguments(bits: int, extra: str = "") -> str:
        """VW's command line for ``bits`` hash bits (see the module docstring)."""
        return f"--quiet --loss_function logistic --link logistic -b {bits} {extra}".strip()

    @staticmethod
    def features(block: FeatureBlock) -> list[str]:
        """One ``|f token:value ...`` namespace per candidate."""
        return ["|f " + " ".join(f"{_vw_token(k)}:{v:g}" for k, v in row.items())
                for row in tokens(block)]

    @classmethod
    def lines(cls, block: FeatureBlock, labels: Sequence[float], weight: float) -> list[str]:
        """VW's training lines of a labelled list (label -1/1, importance weight)."""
        return [f"{1 if y > 0 else -1} {weight:g} {f}"
                for f, y in zip(cls.features(block), labels)]

    def learn_block(self, block: FeatureBlock, labels: Sequence[float], weight: float) -> None:
        """One labelled list: one ``learn`` per shown item."""
        learn = self.vw.learn
        for line in self.lines(block, labels, weight):
            learn(line)

    def predict_block(self, block: FeatureBlock) -> list[float]:
        """Click probability of each candidate, one ``predict`` each."""
        predict = self.vw.predict
        return [predict(f) for f in self.features(block)]

    def close(self) -> None:
        """Release VW's native state."""
        self.vw.finish()


class RiverPeer:
    """River's FTRL-Proximal logistic regression over our feature rows."""

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, l1: float = 0.0,
                 l2: float = 1.0) -> None:
        from river import linear_model, optim

        self.model = linear_model.LogisticRegression(
            optimizer=optim.FTRLProximal(alpha=alpha, beta=beta, l1=l1, l2=l2))

    @staticmethod
    def rows(block: FeatureBlock) -> list[dict[str, float]]:
        """One feature dict per candidate."""
        return tokens(block)

    def learn_block(self, block: FeatureBlock, labels: Sequence[float], weight: float) -> None:
        """One labelled list: one ``learn_one`` per shown item."""
        learn = self.model.learn_one
        for x, y in zip(self.rows(block), labels):
            learn(x, y > 0, weight)

    def predict_block(self, block: FeatureBlock) -> list[float]:
        """Click probability of each candidate, one ``predict_proba_one`` each."""
        proba = self.model.predict_proba_one
        return [float(proba(x)[True]) for x in self.rows(block)]  # type: ignore[no-untyped-call]
