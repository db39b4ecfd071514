"""The wire contract's examples, read from the contract document itself.

The project keeps a copy in ``docs/contract.md``; the binding original lives in
``../shared/contract.md`` beside the repository when that folder is present.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import orjson

__all__ = ["CONTRACT_PATHS", "bad_variants", "contract_examples"]

ROOT = Path(__file__).resolve().parents[1]
CONTRACT_PATHS = (ROOT / "docs" / "contract.md", ROOT.parent / "shared" / "contract.md")


def contract_examples(path: Path = CONTRACT_PATHS[0]) -> dict[str, dict[str, Any]]:
    """The JSON examples of the contract, by role, in document order."""
    blocks = re.findall(r"```json\n(.*?)```", path.read_text(), flags=re.S)
    roles = ["item", "impression", "interaction", "rank_request", "rank_response"]
    assert len(blocks) == len(roles), f"expected {len(roles)} JSON examples in {path}"
    return {role: orjson.loads(block) for role, block in zip(roles, blocks)}


#: Required fields of each example, as dotted paths.
REQUIRED = {
    "item": ["item_id"],
    "impression": ["impression_id", "user_id", "items", "items.0.item_id", "items.0.position"],
    "interaction": ["type", "user_id", "item_id"],
    "rank_request": ["user_id", "items", "items.0.item_id"],
}

#: A value of the wrong type for each typed field, as dotted paths.
WRONG_TYPES = {
    "item": {"item_id": 17, "title": ["x"], "category": 3, "brand": {}, "price": "59.9",
             "tags": "waterproof", "attributes": [1], "embedding": ["a"], "ts": "now",
             "deleted": "yes"},
    "impression": {"impression_id": 1, "user_id": None, "session_id": 9, "query": 5,
                   "items": {}, "items.0.item_id": 1, "items.0.position": "1",
                   "items.0.base_score": "high", "items.0.propensity": "0.8",
                   "items.0.features": [1], "context": "mobile", "model_version": 118,
                   "ts": 1.5},
    "interaction": {"type": "like", "user_id": 42, "session_id": [], "item_id": 1.0,
                    "impression_id": 7, "value": "59.9", "ts": "x"},
    "rank_request": {"user_id": 42, "session_id": 9, "query": [], "items": "sku-1",
                     "items.0.item_id": 1, "items.0.base_score": "12.3",
                     "items.0.features": "cheap", "context": 3, "explain": "no"},
}


def _set(doc: dict[str, Any], path: str, value: Any, delete: bool = False) -> None:
    parts = path.split(".")
    node: Any = doc
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if delete:
        del node[last]
    else:
        node[last] = value


def bad_variants(role: str) -> list[tuple[str, str, dict[str, Any]]]:
    """``(field path, what is wrong, document)`` for each missing field and wrong type."""
    base = contract_examples()[role]
    out = []
    for path in REQUIRED[role]:
        doc = copy.deepcopy(base)
        _set(doc, path, None, delete=True)
        out.append((path, "missing", doc))
    for path, value in WRONG_TYPES[role].items():
        doc = copy.deepcopy(base)
        _set(doc, path, value)
        out.append((path, "wrong type", doc))
    return out
