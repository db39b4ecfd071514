"""Item representation: what the features need of a catalog entry, computed once.

:func:`item_info` turns a catalog entry (an ItemEvent as a dict) into an
:class:`ItemInfo` with its hashes, category levels, brand, log price and text tokens
precomputed, so ranking a request only gathers them. :class:`learner.catalog.ItemCache`
keeps them by ``item_id``, in columns; the worker fills it from the items stream, the
scorer from Redis.

Examples
--------
>>> info = item_info("sku-1", {"title": "Trail running shoes", "category": "shoes/running",
...                            "brand": "Acme", "price": 59.9, "tags": ["waterproof"]})
>>> info.category, info.brand, sorted(info.tokens)
('shoes/running', 'acme', ['acme', 'run', 'running', 'shoe', 'shoes', 'trail', 'waterproof'])
>>> info.price_hash != 0, info.lift_keys
(True, ('i:sku-1', 'b:acme', 'c:shoes/running', 'p:8'))
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from learner.hashing import _hash_str
from learner.state import category_levels, exposure_keys

__all__ = ["VECTOR_DIM", "ItemInfo", "item_info", "item_text", "item_vector", "tokenize",
           "unknown_item_info"]

_TOKEN = re.compile(r"[a-z0-9]+")


def _stems(token: str) -> list[str]:
    # a light stemmer: "shoes" -> "shoe", "running" -> "run"; both forms are kept
    out = [token]
    if len(token) > 3 and token.endswith("s"):
        out.append(token[:-1])
    if len(token) > 5 and token.endswith("ing"):
        stem = token[:-3]
        out.append(stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else stem)
    return out


@lru_cache(maxsize=4096)
def tokenize(text: str | None) -> frozenset[str]:
    """Lower-cased word tokens with their light stems.

    >>> sorted(tokenize("Running Shoes!"))
    ['run', 'running', 'shoe', 'shoes']
    """
    if not text:
        return frozenset()
    return frozenset(s for t in _TOKEN.findall(text.lower()) for s in _stems(t))


def item_text(item: Mapping[str, Any]) -> str:
    """An item's text: title, brand, category and tags, what its words (``tokens``) and
    its sentence embedding (``text_vector``, :mod:`learner.text_encoder`) are made from.

    >>> item_text({"title": "Trail shoe", "brand": "Acme", "category": "shoes/trail",
    ...            "tags": ["waterproof"]})
    'Trail shoe. Acme. shoes trail. waterproof'
    """
    parts = [str(item.get("title") or ""), str(item.get("brand") or ""),
             str(item.get("category") or "").replace("/", " "),
             " ".join(str(t) for t in item.get("tags") or [])]
    return ". ".join(p for p in parts if p.strip())


@dataclass(frozen=True)
class ItemInfo:
    """One item's precomputed inputs to the features."""

    item_id: str
    item_hash: int
    category: str | None
    category_levels: tuple[str, ...]
    category_hash: int
    brand: str | None
    brand_hash: int
    log_price: float | None
    price: float | None
    tokens: frozenset[str]
    #: Hash of the item's price level (half a natural-log unit), 0 without a price.
    price_hash: int = 0
    #: The ``exposure`` keys the item counts toward, one per kind, ``None`` where the
    #: item has no such attribute: itself, its brand, its leaf category, its price level
    #: (:func:`learner.state.exposure_keys`).
    lift_keys: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None)
    #: The catalog's ``embedding`` as a unit vector of at most :data:`VECTOR_DIM`
    #: dimensions (see :func:`item_vector`), ``None`` without one.
    vector: tuple[float, ...] | None = None
    #: The sentence embedding of the item's text (``text_vector`` in the catalog entry,
    #: written by the worker at ingest; :mod:`learner.text_encoder`), ``None`` without one.
    text_vector: npt.NDArray[np.float32] | None = field(default=None, compare=False,
                                                          repr=False)

    @property
    def known(self) -> bool:
        """Whether the catalog had an entry for this item."""
        return self.category is not None or self.brand is not None or bool(self.tokens)


def item_info(item_id: str, item: Mapping[str, Any] | None) -> ItemInfo:
    """Precompute an item's feature inputs from its catalog entry (or ``None``)."""
    item = item or {}
    category = item.get("category") or None
    brand = (item.get("brand") or "").strip().lower() or None
    price = item.get("price")
    known_price = isinstance(price, (int, float)) and price > 0
    log_price = math.log(price) if known_price else None
    levels = tuple(category_levels(category))
    return ItemInfo(
        item_id=item_id,
        item_hash=_hash_str(f"item={item_id}"),
        category=category,
        category_levels=levels,
        category_hash=_hash_str(f"category={category}") if category else 0,
        brand=brand,
        brand_hash=_hash_str(f"brand={brand}") if brand else 0,
        log_price=log_price,
        price=float(price) if known_price else None,
        tokens=tokenize(item_text(item)),
        price_hash=0 if log_price is None else _hash_str(f"price_level={round(log_price * 2)}"),
        lift_keys=_lift_keys(item_id, brand, levels, float(price) if known_price else None),
        vector=item_vector(item.get("embedding")),
        text_vector=_text_vector(item.get("text_vector")),
    )


def _text_vector(values: Any) -> npt.NDArray[np.float32] | None:
    """A catalog entry's ``text_vector`` as a read-only float32 array (``None`` when it
    is missing or not a finite, non-empty list of numbers)."""
    if not isinstance(values, (list, tuple)) or not values:
        return None
    try:
        v = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        return None
    if v.ndim != 1 or not np.isfinite(v).all():
        return None
    v.setflags(write=False)
    return v


#: Dimensions an item vector keeps: longer embeddings are projected down to this many.
VECTOR_DIM = 32


def item_vector(embedding: Sequence[float] | None) -> tuple[float, ...] | None:
    """The item's ``embedding`` as a unit vector of at most :data:`VECTOR_DIM` dimensions.

    A longer one is multiplied by a fixed Gaussian random matrix (seeded by its length,
    the same in every process; Johnson-Lindenstrauss keeps its angles approximately).
    ``None`` for a missing, empty, zero or non-finite vector.

    >>> item_vector([3.0, 4.0])
    (0.6, 0.8)
    >>> len(item_vector([1.0] * 100)), item_vector([0.0, 0.0]), item_vector(None)
    (32, None, None)
    """
    if not embedding:
        return None
    v = np.asarray(embedding, dtype=np.float64)
    if v.ndim != 1 or not np.isfinite(v).all():
        return None
    if len(v) > VECTOR_DIM:
        v = _projection(len(v)) @ v
    norm = float(np.sqrt(v @ v))
    return tuple((v / norm).tolist()) if norm > 0 else None


@lru_cache(maxsize=8)
def _projection(dim: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng([20261130, dim]).normal(size=(VECTOR_DIM, dim))


def _lift_keys(item_id: str, brand: str | None, levels: tuple[str, ...], price: float | None
               ) -> tuple[str | None, str | None, str | None, str | None]:
    """:func:`learner.state.exposure_keys` of an item, one slot per kind."""
    slots: dict[str, str] = {k[0]: k for k in exposure_keys(
        item_id, {"brand": brand, "category": levels[-1] if levels else None, "price": price})}
    return slots.get("i"), slots.get("b"), slots.get("c"), slots.get("p")


@lru_cache(maxsize=1 << 16)
def unknown_item_info(item_id: str) -> ItemInfo:
    """The info of an item the catalog does not know (cached: it depends on the id only).

    >>> unknown_item_info("sku-9") is unknown_item_info("sku-9"), unknown_item_info("sku-9").known
    (True, False)
    """
    return item_info(item_id, None)
