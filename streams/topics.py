"""Topic names of the wire contract, under the configurable prefix.

>>> t = Topics("shop.")
>>> t.items, t.dead_letter, t.examples
('shop.items', 'shop.dead-letter', 'shop.examples')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Topics"]


@dataclass(frozen=True)
class Topics:
    """The names of every topic one deployment uses."""

    prefix: str = "streamrank."

    @property
    def items(self) -> str:
        """Catalog upserts, keyed by ``item_id``."""
        return f"{self.prefix}items"

    @property
    def impressions(self) -> str:
        """Served result lists, keyed by ``user_id``."""
        return f"{self.prefix}impressions"

    @property
    def interactions(self) -> str:
        """Views, clicks, add-to-carts and purchases, keyed by ``user_id``."""
        return f"{self.prefix}interactions"

    @property
    def dead_letter(self) -> str:
        """Rejected records with the reason."""
        return f"{self.prefix}dead-letter"

    @property
    def examples(self) -> str:
        """Internal: labelled lists from the join, consumed by the one learner (1 partition)."""
        return f"{self.prefix}examples"

    @property
    def event_topics(self) -> tuple[str, str, str]:
        """The three public input topics."""
        return (self.items, self.impressions, self.interactions)
