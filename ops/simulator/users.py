r"""Simulated shoppers with hidden tastes, and the true relevance they give each item.

Every user has a weight per category (a Dirichlet draw: most users care about one to
three categories, so they search those again and again), an affinity per brand, a
preferred price level with a sensitivity to it, a small latent taste vector, and a few
favourite items. The true relevance of item ``i`` to user ``u`` is the probability that
``u`` clicks ``i`` once ``u`` has looked at it:

.. math::

    r_{ui} = \sigma\big(b + c \cdot \mathrm{clip}(\log(C\,\theta_{u,cat(i)}))
             + a_{u,brand(i)} + q \cdot quality_i
             - s_u (level_i - p_u)^2 / 2 + m \cdot \langle x_u, y_i \rangle / \sqrt{d}
             + f \cdot [i \in fav_u]\big)

Only ``quality`` is visible to the upstream engine (as popularity); everything else is
personal, so within one category the best order differs a lot from user to user.

A session adds a :class:`SessionIntent` on top: what this visit is about (a brand
leaning, a price shift, a direction in taste space), drawn when the session starts and
drifting from one request to the next (:meth:`SessionIntent.drift`), so the session's
own clicks say more about its next request than the user's long-term history does.

Examples
--------
>>> import numpy as np
>>> from ops.simulator.catalog import make_catalog
>>> cat = make_catalog(300, np.random.default_rng(0))
>>> pop = make_users(200, cat, np.random.default_rng(1))
>>> pop.user_ids[0], pop.category_weight[0].round(2).tolist()
('u-0001', [0.01, 0.81, 0.0, 0.0, 0.0, 0.01, 0.16, 0.0, 0.0, 0.0])

Within the user's main category (hiking shoes) relevance runs from near 0 to 0.75:

>>> rel = pop.true_relevance(0, cat.items_in(1))
>>> np.sort(rel)[::-1][:5].round(2).tolist(), round(float(rel.min()), 3)
([0.75, 0.74, 0.69, 0.58, 0.52], 0.011)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ops.simulator.catalog import Catalog

__all__ = ["Population", "SessionIntent", "TasteParams", "make_users"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TasteParams:
    """How the parts of a user's taste add up to a relevance logit."""

    #: Logit of an average item in a liked category (sets the overall click rate).
    bias: float = -2.5
    #: Weight of log(n_categories * category weight), clipped to ``category_clip``.
    category_scale: float = 0.5
    category_clip: tuple[float, float] = (-4.0, 1.5)
    #: Weight of the item's quality (what the upstream engine knows as popularity).
    quality_scale: float = 0.45
    #: Weight of the latent taste match (std of that term).
    match_scale: float = 0.7
    #: Logit boost of a user's favourite items.
    favourite_boost: float = 3.5


@dataclass(frozen=True)
class SessionIntent:
    """What one session is after, as logit offsets on top of the user's taste.

    ``brand`` ``(n_brands,)`` adds to the brand affinity, ``price`` shifts the preferred
    price level, ``taste`` ``(d,)`` adds to the latent taste vector.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = SessionIntent.draw(n_brands=3, taste_dim=2, scale=1.0, rng=rng)
    >>> a.brand.round(2).tolist(), round(a.price, 2)
    ([0.13, -0.13, 0.64], 0.1)

    With ``rate=0.5`` half the intent's variance is redrawn at each step: it keeps its
    scale and its correlation with where it started falls as ``0.5 ** (steps / 2)``.

    >>> a = SessionIntent.draw(n_brands=10_000, taste_dim=2, scale=1.0, rng=rng)
    >>> b = a.drift(rate=0.5, scale=1.0, rng=rng)
    >>> c = b.drift(rate=0.5, scale=1.0, rng=rng)
    >>> [round(float(np.corrcoef(a.brand, x.brand)[0, 1]), 2) for x in (b, c)]
    [0.71, 0.49]
    >>> round(float(c.brand.std()), 2)
    1.0
    """

    brand: FloatArray
    price: float
    taste: FloatArray

    @classmethod
    def draw(cls, n_brands: int, taste_dim: int, scale: float,
             rng: np.random.Generator) -> SessionIntent:
        """A fresh intent; every offset has standard deviation ``scale``."""
        return cls(brand=scale * rng.normal(size=n_brands), price=float(scale * rng.normal()),
                   taste=scale * rng.normal(size=taste_dim))

    def drift(self, rate: float, scale: float, rng: np.random.Generator) -> SessionIntent:
        """The intent one request later: an AR(1) step that redraws a share ``rate`` of
        the variance (0 keeps it, 1 forgets it), so the scale stays ``scale``."""
        keep, fresh = np.sqrt(1.0 - rate), np.sqrt(rate)
        new = SessionIntent.draw(len(self.brand), len(self.taste), scale, rng)
        return SessionIntent(brand=keep * self.brand + fresh * new.brand,
                             price=float(keep * self.price + fresh * new.price),
                             taste=keep * self.taste + fresh * new.taste)


@dataclass(frozen=True)
class Population:
    """Users as arrays of hidden tastes over one catalog."""

    catalog: Catalog
    user_ids: list[str]
    #: ``(n_users, n_categories)`` Dirichlet weights; row sums are 1.
    category_weight: FloatArray
    #: ``(n_users, n_brands)`` logit affinity to each brand.
    brand_affinity: FloatArray
    #: ``(n_users,)`` preferred price level (see :attr:`Catalog.price_level`).
    price_preference: FloatArray
    #: ``(n_users,)`` logit penalty per squared price-level unit away from the preference.
    price_sensitivity: FloatArray
    #: ``(n_users, d)`` and ``(n_items, d)`` latent taste vectors.
    user_taste: FloatArray
    item_taste: FloatArray
    #: ``(n_users, n_favourites)`` item indices each user loves.
    favourites: IntArray
    #: ``(n_users,)`` probability that the next session belongs to each user.
    activity: FloatArray
    params: TasteParams

    def __len__(self) -> int:
        return len(self.user_ids)

    def user_index(self, user_id: str) -> int:
        """Index of a user id (``u-0001`` is 0)."""
        return int(user_id.rsplit("-", 1)[1]) - 1

    def logits(self, user: int, item_indices: npt.ArrayLike,
               intent: SessionIntent | None = None) -> FloatArray:
        """``(n,)`` relevance logits of items for one user (in one session's ``intent``,
        if given); one vectorized pass."""
        p, cat = self.params, self.catalog
        items = np.asarray(item_indices, dtype=np.int64)
        n_cat = self.category_weight.shape[1]
        brand = self.brand_affinity[user, cat.brand[items]]
        price_pref = self.price_preference[user]
        taste = self.user_taste[user]
        if intent is not None:
            brand = brand + intent.brand[cat.brand[items]]
            price_pref = price_pref + intent.price
            taste = taste + intent.taste
        with np.errstate(divide="ignore"):
            log_w = np.log(n_cat * self.category_weight[user, cat.category[items]])
        z = p.bias + p.category_scale * np.clip(log_w, *p.category_clip)
        z += brand
        z += p.quality_scale * cat.quality[items]
        z -= 0.5 * self.price_sensitivity[user] * (cat.price_level[items] - price_pref) ** 2
        d = self.user_taste.shape[1]
        z += p.match_scale * (self.item_taste[items] @ taste) / np.sqrt(d)
        z += p.favourite_boost * np.isin(items, self.favourites[user])
        return z

    def true_relevance(self, user: int, item_indices: npt.ArrayLike,
                       intent: SessionIntent | None = None) -> FloatArray:
        """``(n,)`` probability in [0, 1] that ``user`` clicks each item once examined."""
        return 1.0 / (1.0 + np.exp(-self.logits(user, item_indices, intent)))


def make_users(n_users: int, catalog: Catalog, rng: np.random.Generator, *,
               concentration: float = 0.15, brand_scale: float = 0.9,
               price_sensitivity: float = 0.4, n_favourites: int = 5, taste_dim: int = 8,
               activity_spread: float = 0.8, params: TasteParams | None = None) -> Population:
    """Draw ``n_users`` shoppers with hidden tastes over ``catalog``.

    Parameters
    ----------
    n_users
        Number of users; ids are ``u-0001`` onwards.
    catalog
        The items tastes refer to.
    rng
        Source of randomness: the same generator state gives the same users.
    concentration
        Dirichlet concentration of category weights; small means one or two categories.
    brand_scale
        Standard deviation of the per-brand logit affinities.
    price_sensitivity
        Mean of the (gamma-distributed) per-user price sensitivity.
    n_favourites
        Favourite items per user, drawn from the user's liked categories.
    taste_dim
        Dimension of the latent taste vectors.
    activity_spread
        Log-normal sigma of user activity: some users come back more often than others.
    params
        How the parts add up (:class:`TasteParams` defaults when not given).
    """
    if n_users < 1:
        raise ValueError(f"n_users must be at least 1, got {n_users}")
    n_items, n_cat = len(catalog), catalog.n_categories
    weights = rng.dirichlet(np.full(n_cat, concentration), size=n_users)
    brand = rng.normal(0.0, brand_scale, size=(n_users, catalog.n_brands))
    price_pref = rng.normal(0.0, 1.0, size=n_users)
    sensitivity = rng.gamma(2.0, price_sensitivity / 2.0, size=n_users)
    user_taste = rng.normal(size=(n_users, taste_dim))
    item_taste = rng.normal(size=(n_items, taste_dim))
    n_fav = min(n_favourites, n_items)
    # favourites: items of the categories a user likes, drawn without replacement
    item_p = weights[:, catalog.category] + 1e-12  # (n_users, n_items)
    item_p /= item_p.sum(axis=1, keepdims=True)
    favourites = np.stack([rng.choice(n_items, size=n_fav, replace=False, p=item_p[u])
                           for u in range(n_users)]).astype(np.int64)
    activity = rng.lognormal(0.0, activity_spread, size=n_users)
    width = max(4, len(str(n_users)))
    return Population(
        catalog=catalog, user_ids=[f"u-{u + 1:0{width}d}" for u in range(n_users)],
        category_weight=weights, brand_affinity=brand, price_preference=price_pref,
        price_sensitivity=sensitivity, user_taste=user_taste, item_taste=item_taste,
        favourites=favourites.reshape(n_users, n_fav), activity=activity / activity.sum(),
        params=params if params is not None else TasteParams(),
    )
