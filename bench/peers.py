"""The reference learners, Vowpal Wabbit and River, fed the very tokens our features hash.

Our features (``learner.features``) are a bias and hashed crosses of who asks with what is
shown: ``user=<id>`` x ``item=<id>``, ``query=<normalized query>`` x ``item=<id>`` and
``session=<id>`` x ``item=<id>``. The peers get the same tokens and crosses, built their
own native way:

* **Vowpal Wabbit** (``vowpalwabbit.Workspace``): one namespace per side (``u``, ``q``,
  ``s``, ``i``), the crosses as ``-q ui -q qi -q si`` with the single namespaces switched
  off (``--ignore_linear uqsi``), VW's constant as the bias, ``-b`` the same hash bits as
  ours, logistic loss, VW's default learner (adaptive, normalised, invariant SGD).
* **River** (``linear_model.LogisticRegression(optimizer=optim.FTRLProximal())``, with
  our FTRL hyper-parameters): one dict key per cross, River's intercept as the bias. River
  does not hash; the dict grows with the distinct crosses.

Both APIs take one row at a time, so a list of ``n`` candidates is ``n`` calls.
:func:`feature_coverage` compares this token set with the feature names our current
code declares, so a benchmark run says so when the model grew features the peers do not
get (and the comparison stops being like for like).

Examples
--------
>>> from learner.features import RankContext
>>> ctx = RankContext("u-1", "s-9", "Trail  Shoes")
>>> VWPeer.context(ctx) + VWPeer.item("sku-1")
'|u u-1 |q trail_shoes |s s-9 |i sku-1'
>>> sorted(RiverPeer.row(RiverPeer.context(ctx), "sku-1"))
['query=trail shoes|item=sku-1', 'session=s-9|item=sku-1', 'user=u-1|item=sku-1']
>>> vw = VWPeer(bits=18)
>>> for _ in range(30):
...     vw.learn_list(ctx, ["sku-1", "sku-2"], [1.0, 0.0], 1.0)
>>> s = vw.predict_list(ctx, ["sku-1", "sku-2"]); bool(s[0] > 0.5 > s[1])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from learner import features as our_features
from learner.features import RankContext, normalize_query

__all__ = ["PEER_FEATURES", "RiverPeer", "VWPeer", "coverage_figure", "feature_coverage"]

#: The feature templates the peers get, named as ``learner.features`` names them.
PEER_FEATURES: tuple[str, ...] = ("bias", "user_x_item", "query_x_item", "session_x_item")


def feature_coverage() -> dict[str, Any]:
    """Our current feature names, the peers', and what the peers do not get."""
    ours = getattr(our_features, "FEATURE_NAMES", None)
    if ours is None:  # a model with more families declares them by kind
        ours = tuple(getattr(our_features, "CROSS_FEATURES", ())) + tuple(
            getattr(our_features, "NUMERIC_FEATURES", ()))
    ours = tuple(ours)
    missing = [f for f in ours if f not in PEER_FEATURES]
    return {"ours": list(ours), "peers": list(PEER_FEATURES), "missing_in_peers": missing,
            "like_for_like": not missing}


def coverage_figure() -> Any:
    """A table row that says whether the peers get all our features (a validity check)."""
    from bench.results import Figure, Target

    cov = feature_coverage()
    missing = cov["missing_in_peers"]
    return Figure("our feature templates the peers do not get", "", float(len(missing)),
                  target=Target("ours", "<=", 0, "0 (like for like)"),
                  note=("like for like" if not missing else
                        "not like for like: " + ", ".join(missing)))


def _vw_token(s: str) -> str:
    # VW splits features on spaces and reads ':' and '|' as syntax
    return s.replace(" ", "_").replace(":", "_").replace("|", "_")


class VWPeer:
    """Vowpal Wabbit over the same tokens (see the module docstring)."""

    def __init__(self, bits: int = 20, extra: str = "") -> None:
        from vowpalwabbit import Workspace

        self.args = self.arguments(bits, extra)
        self.vw = Workspace(self.args)

    @staticmethod
    def arguments(bits: int, extra: str = "") -> str:
        """VW's command line for ``bits`` hash bits (see the module docstring)."""
        return (f"--quiet --loss_function logistic --link logistic -b {bits} "
                f"-q ui -q qi -q si --ignore_linear uqsi {extra}").strip()

    @staticmethod
    def context(ctx: RankContext) -> str:
        """The request-side namespaces, built once per list."""
        parts = [f"|u {_vw_token(ctx.user_id)}"]
        if ctx.query:
            parts.append(f"|q {_vw_token(normalize_query(ctx.query))}")
        if ctx.session_id:
            parts.append(f"|s {_vw_token(ctx.session_id)}")
        return " ".join(parts) + " "

    @staticmethod
    def item(item_id: str) -> str:
        """The candidate's namespace."""
        return f"|i {_vw_token(item_id)}"

    def learn_list(self, ctx: RankContext, item_ids: Sequence[str], labels: Sequence[float],
                   weight: float) -> None:
        """One labelled list: one ``learn`` per shown item (label -1/1, importance weight)."""
        head = self.context(ctx)
        learn = self.vw.learn
        for item_id, y in zip(item_ids, labels):
            learn(f"{1 if y > 0 else -1} {weight:g} {head}|i {_vw_token(item_id)}")

    def predict_list(self, ctx: RankContext, item_ids: Sequence[str]) -> list[float]:
        """Click probability of each candidate, one ``predict`` each."""
        head = self.context(ctx)
        predict = self.vw.predict
        return [predict(f"{head}|i {_vw_token(i)}") for i in item_ids]

    def close(self) -> None:
        """Release VW's native state."""
        self.vw.finish()


class RiverPeer:
    """River's FTRL-Proximal logistic regression over the same crosses."""

    def __init__(self, alpha: float = 0.1, beta: float = 1.0, l1: float = 0.0,
                 l2: float = 1.0) -> None:
        from river import linear_model, optim

        self.model = linear_model.LogisticRegression(
            optimizer=optim.FTRLProximal(alpha=alpha, beta=beta, l1=l1, l2=l2))

    @staticmethod
    def context(ctx: RankContext) -> list[str]:
        """The request-side tokens, built once per list."""
        sides = [f"user={ctx.user_id}"]
        if ctx.query:
            sides.append(f"query={normalize_query(ctx.query)}")
        if ctx.session_id:
            sides.append(f"session={ctx.session_id}")
        return sides

    @staticmethod
    def row(sides: list[str], item_id: str) -> dict[str, float]:
        """One candidate's features: each side crossed with the item."""
        return {f"{s}|item={item_id}": 1.0 for s in sides}

    def learn_list(self, ctx: RankContext, item_ids: Sequence[str], labels: Sequence[float],
                   weight: float) -> None:
        """One labelled list: one ``learn_one`` per shown item."""
        sides = self.context(ctx)
        learn = self.model.learn_one
        for item_id, y in zip(item_ids, labels):
            learn(self.row(sides, item_id), y > 0, weight)

    def predict_list(self, ctx: RankContext, item_ids: Sequence[str]) -> list[float]:
        """Click probability of each candidate, one ``predict_proba_one`` each."""
        sides = self.context(ctx)
        proba = self.model.predict_proba_one
        return [float(proba(self.row(sides, i))[True]) for i in item_ids]  # type: ignore[no-untyped-call]
