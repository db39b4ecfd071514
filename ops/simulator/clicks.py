"""A position-based click model with add-to-cart and purchase after a click.

The user examines position ``p`` (1-based) with probability ``examine(p) = 1 / p**eta``
(or a given table) and clicks an examined item with its true relevance, independently
per position: the position-based model (PBM) of Craswell et al., "An experimental
comparison of click position-bias models", WSDM 2008; see also Chuklin, Markov and
de Rijke, "Click Models for Web Search", 2015. At most ``max_clicks`` clicks count per
list (the first ones, in position order). A click leads to an add-to-cart with
probability ``cart_rate * relevance``, and a cart to a purchase with probability
``purchase_rate * relevance``. One list is simulated with a few array operations.

Examples
--------
>>> import numpy as np
>>> model = ClickModel(eta=1.0)
>>> model.click_probability(np.full(4, 0.5)).tolist()
[0.5, 0.25, 0.16666666666666666, 0.125]
>>> out = model.simulate(np.array([0.9, 0.1, 0.8, 0.2]), np.random.default_rng(0))
>>> out.clicked.tolist()
[True, False, True, True]

Equal relevance, 10,000 lists: the click rate falls with position as ``1 / p``.

>>> rng = np.random.default_rng(0)
>>> clicks = sum(model.simulate(np.full(4, 0.5), rng).clicked for _ in range(10_000))
>>> (clicks / 10_000).round(2).tolist()
[0.5, 0.25, 0.17, 0.12]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ClickModel", "ClickOutcome"]

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClickOutcome:
    """What the user did with one list; each array is ``(n,)`` in served order."""

    clicked: BoolArray
    carted: BoolArray
    purchased: BoolArray


class ClickModel:
    """Position-based clicks, then carts and purchases that grow with relevance.

    Parameters
    ----------
    eta
        Position-bias exponent: ``examine(p) = 1 / p**eta``.
    examine
        A table of examination probabilities by position (1 first), used instead of
        ``eta``; positions past its end are not examined.
    max_clicks
        Most clicks per list; later clicks are dropped.
    cart_rate
        ``P(add_to_cart | click) = cart_rate * relevance``.
    purchase_rate
        ``P(purchase | add_to_cart) = purchase_rate * relevance``.
    """

    def __init__(self, eta: float = 1.0, examine: npt.ArrayLike | None = None,
                 max_clicks: int = 3, cart_rate: float = 0.5,
                 purchase_rate: float = 0.7) -> None:
        self.eta = eta
        self.examine = None if examine is None else np.asarray(examine, dtype=np.float64)
        if self.examine is not None and not ((self.examine >= 0) & (self.examine <= 1)).all():
            raise ValueError("examine must hold probabilities in [0, 1]")
        self.max_clicks = max_clicks
        self.cart_rate = cart_rate
        self.purchase_rate = purchase_rate

    def examination(self, n: int) -> FloatArray:
        """``(n,)`` probability that each of the first ``n`` positions is looked at."""
        if self.examine is None:
            return 1.0 / np.arange(1, n + 1, dtype=np.float64) ** self.eta
        out = np.zeros(n, dtype=np.float64)
        m = min(n, len(self.examine))
        out[:m] = self.examine[:m]
        return out

    def click_probability(self, relevance: npt.ArrayLike) -> FloatArray:
        """``(n,)`` click probability of each position, before the ``max_clicks`` cap."""
        rel = np.asarray(relevance, dtype=np.float64)
        return self.examination(len(rel)) * rel

    def simulate(self, relevance: npt.ArrayLike, rng: np.random.Generator) -> ClickOutcome:
        """Clicks, carts and purchases on one list, given relevance in served order."""
        rel = np.asarray(relevance, dtype=np.float64)
        # one (3, n) draw per list, so the random stream advances the same way every time
        u = rng.random((3, len(rel)))
        clicked = u[0] < self.click_probability(rel)
        clicked &= np.cumsum(clicked) <= self.max_clicks
        carted = clicked & (u[1] < self.cart_rate * rel)
        purchased = carted & (u[2] < self.purchase_rate * rel)
        return ClickOutcome(clicked=clicked, carted=carted, purchased=purchased)
