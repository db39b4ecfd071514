"""A synthetic product catalog: titles from words, categories, brands, prices, tags.

Items are spread evenly over the categories of a small outdoor-and-sports taxonomy
(:data:`CATEGORIES`); each gets a brand (popular brands more often), a log-normal price
around its category's typical price (premium brands higher), one or two tags, and a hidden
``quality`` that the upstream search engine sees as popularity. The per-item arrays
(``category``, ``brand``, ``price_level``, ``quality``) feed the vectorized taste and
query models; :meth:`Catalog.item_events` turns the catalog into contract ItemEvents.

Examples
--------
>>> import numpy as np
>>> cat = make_catalog(300, np.random.default_rng(0))
>>> len(cat), cat.n_categories, cat.n_brands
(300, 10, 15)
>>> ev = next(cat.item_events())
>>> ev["item_id"], ev["title"], ev["category"], ev["brand"], ev["price"]
('sku-0001', 'Acme pro over-ear headphones, bluetooth 5.3', 'electronics/headphones', 'acme', 79.99)
>>> np.bincount(cat.category).tolist()
[30, 30, 30, 30, 30, 30, 30, 30, 30, 30]
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["BRANDS", "CATEGORIES", "Catalog", "Category", "PRICE_SPREAD", "make_catalog"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: Standard deviation of log-price within a category (before the brand premium).
PRICE_SPREAD = 0.35


@dataclass(frozen=True)
class Category:
    """One leaf of the taxonomy and the words its titles and queries are made of."""

    name: str
    #: Product nouns, singular ("trail runner"); a title uses one.
    nouns: tuple[str, ...]
    #: Query phrases a shopper types for this category ("running shoes").
    queries: tuple[str, ...]
    #: Tags an item of this category may carry; a query may add one ("waterproof ...").
    tags: tuple[str, ...]
    #: Typical (median) price.
    price: float
    #: Names of related categories the upstream engine mixes into its results.
    neighbours: tuple[str, ...]


CATEGORIES: tuple[Category, ...] = (
    Category("shoes/running", ("running shoe", "trail runner", "racing flat"),
             ("running shoes", "trail running shoes", "jogging shoes"),
             ("waterproof", "lightweight", "cushioned", "breathable"), 95.0,
             ("shoes/hiking", "apparel/sports")),
    Category("shoes/hiking", ("hiking boot", "trekking shoe", "approach shoe"),
             ("hiking boots", "trekking shoes", "mountain boots"),
             ("waterproof", "leather", "vibram sole", "wide fit"), 130.0,
             ("shoes/running", "outdoor/backpacks")),
    Category("apparel/jackets", ("rain jacket", "down jacket", "softshell jacket"),
             ("rain jacket", "winter jacket", "outdoor jacket"),
             ("waterproof", "packable", "hooded", "recycled"), 150.0,
             ("apparel/sports", "outdoor/tents")),
    Category("apparel/sports", ("running shirt", "training tights", "sports top"),
             ("running shirt", "sports clothing", "training tights"),
             ("breathable", "reflective", "seamless", "recycled"), 35.0,
             ("shoes/running", "apparel/jackets")),
    Category("outdoor/tents", ("dome tent", "backpacking tent", "family tent"),
             ("tent", "camping tent", "2 person tent"),
             ("ultralight", "freestanding", "4 season", "waterproof"), 240.0,
             ("outdoor/backpacks", "apparel/jackets")),
    Category("outdoor/backpacks", ("daypack", "hiking backpack", "travel backpack"),
             ("backpack", "hiking backpack", "daypack"),
             ("hydration ready", "rain cover", "ultralight", "laptop sleeve"), 85.0,
             ("outdoor/tents", "shoes/hiking")),
    Category("electronics/headphones", ("wireless earbuds", "over-ear headphones",
                                        "sports earphones"),
             ("headphones", "wireless earbuds", "bluetooth headphones"),
             ("noise cancelling", "sweatproof", "long battery", "bluetooth 5.3"), 110.0,
             ("electronics/watches", "sports/cycling")),
    Category("electronics/watches", ("gps watch", "fitness tracker", "smartwatch"),
             ("gps watch", "fitness tracker", "running watch"),
             ("heart rate", "solar", "long battery", "maps"), 220.0,
             ("electronics/headphones", "shoes/running")),
    Category("home/coffee", ("espresso machine", "coffee grinder", "french press"),
             ("coffee machine", "espresso maker", "coffee grinder"),
             ("stainless steel", "compact", "burr", "programmable"), 140.0,
             ("outdoor/backpacks", "electronics/headphones")),
    Category("sports/cycling", ("bike helmet", "cycling gloves", "bike light"),
             ("bike helmet", "cycling gear", "bike light"),
             ("reflective", "mips", "usb rechargeable", "lightweight"), 60.0,
             ("apparel/sports", "electronics/watches")),
    Category("sports/yoga", ("yoga mat", "yoga block", "meditation cushion"),
             ("yoga mat", "yoga equipment", "exercise mat"),
             ("non slip", "eco", "extra thick", "travel"), 40.0,
             ("apparel/sports", "home/coffee")),
    Category("sports/swimming", ("swim goggles", "swimsuit", "swim cap"),
             ("swim goggles", "swimwear", "swimming gear"),
             ("anti fog", "chlorine resistant", "uv protection", "quick dry"), 30.0,
             ("sports/yoga", "apparel/sports")),
)

BRANDS: tuple[str, ...] = (
    "acme", "northpeak", "velo", "stride", "summit", "aurora", "kestrel", "lumen",
    "terra", "nimbus", "orbit", "vanta", "zephyr", "cobalt", "ridge", "fjell", "alto",
    "brisk", "cirrus", "dune",
)

_ADJECTIVES = ("classic", "pro", "ultralight", "everyday", "premium", "compact", "essential",
               "performance", "eco", "urban", "trail", "adventure")
_COLORS = ("black", "blue", "red", "green", "grey", "orange", "white")


@dataclass(frozen=True)
class Catalog:
    """Items as parallel arrays, with the taxonomy and brand names they index into."""

    item_ids: list[str]
    titles: list[str]
    tags: list[list[str]]
    colors: list[str]
    #: ``(n_items,)`` index into :attr:`categories`.
    category: IntArray
    #: ``(n_items,)`` index into :attr:`brands`.
    brand: IntArray
    #: ``(n_items,)`` price in currency units, two decimals.
    price: FloatArray
    #: ``(n_items,)`` log-price relative to the category's typical price, in units of
    #: :data:`PRICE_SPREAD`: about N(0, 1); > 0 is the premium end of its category.
    price_level: FloatArray
    #: ``(n_items,)`` hidden quality, about N(0, 1): what the upstream engine knows as
    #: popularity, and a part of every user's relevance.
    quality: FloatArray
    #: ``(n_items,)`` star rating shown to shoppers, derived from quality.
    rating: FloatArray
    categories: tuple[Category, ...]
    brands: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def n_categories(self) -> int:
        """How many categories the taxonomy has."""
        return len(self.categories)

    @property
    def n_brands(self) -> int:
        """How many brands items are drawn from."""
        return len(self.brands)

    def items_in(self, category: int) -> IntArray:
        """Indices of the items of one category, ascending."""
        return np.flatnonzero(self.category == category).astype(np.int64)

    def neighbours_of(self, category: int) -> list[int]:
        """Indices of the related categories present in this taxonomy."""
        names = {c.name: i for i, c in enumerate(self.categories)}
        return [names[n] for n in self.categories[category].neighbours if n in names]

    def item_event(self, index: int, ts: int | None = None) -> dict[str, Any]:
        """The contract ItemEvent of one item, as a JSON-ready dict."""
        event: dict[str, Any] = {
            "item_id": self.item_ids[index], "title": self.titles[index],
            "category": self.categories[int(self.category[index])].name,
            "brand": self.brands[int(self.brand[index])], "price": float(self.price[index]),
            "tags": list(self.tags[index]),
            "attributes": {"color": self.colors[index], "rating": float(self.rating[index])},
        }
        if ts is not None:
            event["ts"] = ts
        return event

    def item_events(self, ts: int | None = None) -> Iterator[dict[str, Any]]:
        """Every item as a contract ItemEvent dict, in catalog order."""
        for i in range(len(self)):
            yield self.item_event(i, ts)


def make_catalog(n_items: int, rng: np.random.Generator, n_categories: int = 10,
                 n_brands: int = 15) -> Catalog:
    """Draw a catalog of ``n_items`` products.

    Parameters
    ----------
    n_items
        Number of products; item ids are ``sku-0001`` onwards.
    rng
        Source of randomness: the same generator state gives the same catalog.
    n_categories
        How many categories of :data:`CATEGORIES` to use (at most 12).
    n_brands
        How many brands of :data:`BRANDS` to use (at most 20); popularity follows 1/rank.

    Returns
    -------
    Catalog
        Items spread evenly over the categories.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be at least 1, got {n_items}")
    if not 1 <= n_categories <= len(CATEGORIES):
        raise ValueError(f"n_categories must be in 1..{len(CATEGORIES)}, got {n_categories}")
    if not 1 <= n_brands <= len(BRANDS):
        raise ValueError(f"n_brands must be in 1..{len(BRANDS)}, got {n_brands}")
    categories = CATEGORIES[:n_categories]
    brands = BRANDS[:n_brands]

    # even spread: every category gets n_items // n_categories items (+1 for the first few)
    category = rng.permutation(np.arange(n_items) % n_categories).astype(np.int64)
    brand_pop = 1.0 / np.arange(1, n_brands + 1)
    brand = rng.choice(n_brands, size=n_items, p=brand_pop / brand_pop.sum()).astype(np.int64)
    premium = rng.normal(0.0, 0.25, size=n_brands)  # log-price premium of each brand

    quality = rng.normal(0.0, 1.0, size=n_items)
    base = np.log(np.array([c.price for c in categories]))[category]
    log_price = base + premium[brand] + PRICE_SPREAD * rng.normal(size=n_items)
    price = np.maximum(np.round(np.exp(log_price)) - 0.01, 0.99)
    price_level = (np.log(price) - base) / PRICE_SPREAD
    rating = np.clip(np.round(4.0 + 0.5 * quality + 0.2 * rng.normal(size=n_items), 1), 1.0, 5.0)

    # words: one draw per item for each slot, then strings (the only per-item Python loop)
    adj = rng.integers(len(_ADJECTIVES), size=n_items)
    noun = rng.integers(3, size=n_items)
    color = rng.integers(len(_COLORS), size=n_items)
    n_tags = rng.integers(1, 3, size=n_items)
    tag_draw = rng.random((n_items, 4)).argsort(axis=1)  # a random tag order per item
    titles, tags = [], []
    for i in range(n_items):
        c = categories[category[i]]
        item_tags = [c.tags[t] for t in sorted(tag_draw[i, : n_tags[i]])]
        tags.append(item_tags)
        titles.append(f"{brands[brand[i]].capitalize()} {_ADJECTIVES[adj[i]]} "
                      f"{c.nouns[noun[i]]}, {item_tags[0]}")
    width = max(4, len(str(n_items)))
    return Catalog(
        item_ids=[f"sku-{i + 1:0{width}d}" for i in range(n_items)], titles=titles, tags=tags,
        colors=[_COLORS[k] for k in color], category=category, brand=brand,
        price=price.astype(np.float64), price_level=price_level.astype(np.float64),
        quality=quality, rating=rating.astype(np.float64), categories=categories,
        brands=brands,
    )
