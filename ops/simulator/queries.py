"""The query model and the upstream search engine that answers it.

A user picks a category by taste and types one of its query phrases, sometimes with a
tag in front ("waterproof running shoes"). The upstream engine returns ``k`` candidates:
the best of that category plus a few from related categories, ordered by a noisy base
relevance built from what a search engine knows (popularity and text match) and blind to
who is asking. That blindness is what a personal re-ranker can improve on.

Examples
--------
>>> import numpy as np
>>> from ops.simulator.catalog import make_catalog
>>> cat = make_catalog(300, np.random.default_rng(0))
>>> engine = QueryModel(cat)
>>> q = engine.search(0, np.random.default_rng(1))
>>> q.text, len(q.items), int((cat.category[q.items] == 0).sum())
('trail running shoes', 20, 17)
>>> q.base_scores[:3].tolist()
[13.269, 12.506, 12.496]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ops.simulator.catalog import Catalog

__all__ = ["Query", "QueryModel"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Query:
    """One search and the upstream engine's answer to it."""

    text: str
    #: The category the user meant.
    category: int
    #: ``(k,)`` candidate item indices in the upstream order, best first.
    items: IntArray
    #: ``(k,)`` the upstream engine's relevance of each candidate, descending.
    base_scores: FloatArray


class QueryModel:
    """Picks what users search for and answers like a popularity-and-text engine.

    Parameters
    ----------
    catalog
        The items to search.
    k
        Candidates per result list.
    n_neighbours
        How many of them come from related categories.
    noise
        Standard deviation of the per-query noise on the upstream relevance; larger means a
        less reliable upstream order.
    tag_rate
        Share of queries with a tag in front of the phrase.
    tag_boost
        Upstream relevance bonus of items carrying the query's tag (text match).
    neighbour_penalty
        Upstream relevance malus of items from related categories (weaker text match).
    """

    def __init__(self, catalog: Catalog, k: int = 20, n_neighbours: int = 3,
                 noise: float = 0.5, tag_rate: float = 0.3, tag_boost: float = 0.8,
                 neighbour_penalty: float = 1.5) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.catalog = catalog
        self.k = k
        self.n_neighbours = n_neighbours
        self.noise = noise
        self.tag_rate = tag_rate
        self.tag_boost = tag_boost
        self.neighbour_penalty = neighbour_penalty
        vocab = sorted({t for c in catalog.categories for t in c.tags})
        self._tag_column = {t: j for j, t in enumerate(vocab)}
        # (n_items, n_tags) which item carries which tag: text match is one column lookup
        self._has_tag = np.zeros((len(catalog), len(vocab)), dtype=bool)
        for i, tags in enumerate(catalog.tags):
            self._has_tag[i, [self._tag_column[t] for t in tags]] = True
        self._primary = [catalog.items_in(c) for c in range(catalog.n_categories)]
        self._secondary = [self._secondary_pool(c) for c in range(catalog.n_categories)]

    def _secondary_pool(self, category: int) -> tuple[IntArray, FloatArray]:
        # related categories first; other categories only with a larger malus (fallback)
        related = self.catalog.neighbours_of(category)
        others = [c for c in range(self.catalog.n_categories) if c != category]
        pool = np.concatenate([self._primary[c] for c in others]) if others else \
            np.empty(0, dtype=np.int64)
        is_related = np.isin(self.catalog.category[pool], related)
        malus = np.where(is_related, self.neighbour_penalty, 3.0 * self.neighbour_penalty)
        return pool.astype(np.int64), malus

    def pick_category(self, category_weight: npt.ArrayLike, rng: np.random.Generator) -> int:
        """A category drawn from a user's category weights."""
        w = np.asarray(category_weight, dtype=np.float64)
        return int(rng.choice(len(w), p=w / w.sum()))

    def search(self, category: int, rng: np.random.Generator) -> Query:
        """A query text for ``category`` and the upstream engine's ``k`` candidates."""
        cat = self.catalog.categories[category]
        text = cat.queries[int(rng.integers(len(cat.queries)))]
        tag: str | None = None
        if rng.random() < self.tag_rate:
            tag = cat.tags[int(rng.integers(len(cat.tags)))]
            text = f"{tag} {text}"
        primary = self._primary[category]
        secondary, malus = self._secondary[category]
        pool = np.concatenate([primary, secondary])
        score = self.catalog.quality[pool] + self.noise * rng.normal(size=len(pool))
        score[len(primary):] -= malus
        if tag is not None:
            score += self.tag_boost * self._has_tag[pool, self._tag_column[tag]]

        # n_neighbours from related categories, but never crowding the category out
        n_sec = min(self.n_neighbours, len(secondary), self.k - 1 if len(primary) else self.k)
        n_pri = min(len(primary), self.k - n_sec)
        n_sec = min(len(secondary), self.k - n_pri)
        top_pri = np.argsort(-score[: len(primary)], kind="stable")[:n_pri]
        top_sec = len(primary) + np.argsort(-score[len(primary):], kind="stable")[:n_sec]
        chosen = np.concatenate([top_pri, top_sec])
        chosen = chosen[np.argsort(-score[chosen], kind="stable")]
        # a search-engine-like scale: around 10, a few points between best and worst
        base = np.round(10.0 + 2.0 * score[chosen], 3)
        return Query(text=text, category=category, items=pool[chosen].astype(np.int64),
                     base_scores=base)

    def sample(self, category_weight: npt.ArrayLike, rng: np.random.Generator) -> Query:
        """A category by taste, then :meth:`search` in it."""
        return self.search(self.pick_category(category_weight, rng), rng)
