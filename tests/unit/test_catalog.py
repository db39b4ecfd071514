"""The columnar catalog (learner/catalog.py): what a request's candidates gather must be
what their catalog entries say, after updates, evictions and row reuse."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from learner.catalog import BRAND, LEAF, PRICE, TOP, ItemCache
from learner.items import item_info, unknown_item_info


def _entry(k: int) -> dict[str, object]:
    return {"title": f"red shoe {k}" if k % 2 else f"blue bag {k}",
            "category": f"cat{k % 3}/leaf{k % 5}", "brand": f"Brand{k % 4}",
            "price": 10.0 + k, "embedding": [1.0, float(k)]}


def _expected(item_id: str, entry: dict[str, object] | None) -> tuple[object, ...]:
    info = item_info(item_id, entry) if entry is not None else unknown_item_info(item_id)
    levels = info.category_levels
    return (info.item_hash, info.category_hash, info.brand_hash, info.price_hash,
            levels[-1] if levels else None, levels[0] if levels else None, info.brand,
            info.lift_keys[3], info.log_price, info.vector)


def _gathered(cache: ItemCache, ids: list[str]) -> list[tuple[object, ...]]:
    c = cache.gather(ids)
    vocab = cache.vocabularies
    out = []
    vectors = c.vectors
    for k in range(len(ids)):
        v = None if vectors is None or not c.catalog.vector_len[c.rows[k]] else \
            tuple(vectors[k].tolist())
        out.append((*(int(h) for h in c.hashes[k]),
                    *(vocab[col].values[int(c.codes[k, col])] for col in (LEAF, TOP, BRAND, PRICE)),
                    float(c.log_price[k]) if c.has_price[k] else None, v))
    return out


def test_gathered_columns_follow_puts_updates_and_evictions() -> None:
    cache = ItemCache(capacity=6)
    live: OrderedDict[str, dict[str, object]] = OrderedDict()  # the LRU, as a model
    rng = np.random.default_rng(0)
    ids = [f"sku-{j}" for j in range(12)] + ["never"]
    for step in range(300):
        k = int(rng.integers(0, 12))
        item_id = f"sku-{k}"
        if rng.random() < 0.2:
            cache.put(item_id, None)
            live.pop(item_id, None)
        else:
            entry = _entry(k + step)  # the same id gets new attributes over time
            cache.put(item_id, entry)
            live[item_id] = entry
            live.move_to_end(item_id)
            if len(live) > 6:
                live.popitem(last=False)
        assert len(cache) == len(live)
        assert len(cache._infos) <= 1 + 6 + 1  # freed rows are reused: no growth
        assert _gathered(cache, ids) == [_expected(i, live.get(i)) for i in ids]


def test_text_match_forgets_the_words_of_an_overwritten_or_evicted_item() -> None:
    cache = ItemCache(capacity=2)
    cache.put("a", {"title": "red shoe"})
    cache.put("a", {"title": "blue bag"})
    assert cache.gather(["a"]).text_match(frozenset({"shoe"})).tolist() == [0.0]
    assert cache.gather(["a"]).text_match(frozenset({"bag", "red"})).tolist() == [0.5]
    cache.put("b", {"title": "green hat"})
    cache.put("c", {"title": "blue hat"})  # evicts "a"; "c" reuses its row
    assert cache.gather(["a", "b", "c"]).text_match(frozenset({"bag"})).tolist() == [0, 0, 0]
    assert cache.gather(["a", "b", "c"]).text_match(frozenset({"hat"})).tolist() == [0, 1, 1]


def test_kept_query_values_follow_every_change_of_the_catalog() -> None:
    cache = ItemCache(capacity=2)
    q = np.array([1.0, 0.0], dtype=np.float32)
    words = frozenset({"shoe"})

    def match(ids: list[str]) -> list[list[float]]:
        c = cache.gather(ids)
        both = c.query_match("shoe", words, q)
        assert both[:, 0].tolist() == c.text_match(words).tolist()
        assert both[:, 1].tolist() == c.text_similarity(q).tolist()
        return both.tolist()

    cache.put("a", {"title": "red shoe"})  # no text embedding in the catalog yet
    assert match(["a", "x"]) == [[1.0, 0.0], [0.0, 0.0]]
    cache.put("a", {"title": "red shoe", "text_vector": [1.0, 0.0]})
    assert match(["a", "x"]) == [[1.0, 1.0], [0.0, 0.0]]
    cache.put("a", {"title": "blue bag", "text_vector": [0.0, 1.0]})  # overwritten
    assert match(["a", "x"]) == [[0.0, 0.0], [0.0, 0.0]]
    cache.put("b", {"title": "shoe"})
    cache.put("c", {"title": "shoe", "text_vector": [2.0, 0.0]})  # evicts "a", takes its row
    assert match(["c", "a", "b"]) == [[1.0, 2.0], [0.0, 0.0], [1.0, 0.0]]
    assert match(["b", "c", "c"]) == [[1.0, 0.0], [1.0, 2.0], [1.0, 2.0]]
    cache.put("b", {"title": "shoe"})  # written again, unchanged: its values are computed again
    assert match(["b", "c"]) == [[1.0, 0.0], [1.0, 2.0]]


def test_text_embeddings_of_other_widths_are_kept_apart() -> None:
    cache = ItemCache()
    cache.put("a", {"title": "x", "text_vector": [1.0, 0.0, 0.0]})
    cache.put("b", {"title": "y", "text_vector": [0.0, 1.0]})  # another width
    cache.put("c", {"title": "z"})
    c = cache.gather(["a", "b", "c"])
    q3 = np.array([0.5, 0.5, 0.5], dtype=np.float32)
    q2 = np.array([0.0, 2.0], dtype=np.float32)
    assert c.text_similarity(q3).tolist() == [0.5, 0.0, 0.0]
    assert c.text_similarity(q2).tolist() == [0.0, 2.0, 0.0]
    info = cache.get("b")
    assert info is not None and info.text_vector is not None
    assert info.text_vector.tolist() == [0.0, 1.0]


def test_repeated_candidates_each_get_their_state_features() -> None:
    cache = ItemCache()
    cache.put("a", {"brand": "acme"})
    c = cache.gather(["a", "b", "a"])
    assert c.matching({"a": 1}) == [(0, "a"), (2, "a")]
    assert c.matching({"i:a": 1}, by_key=True) == [(0, "i:a"), (2, "i:a")]


def test_the_fallback_fills_misses_before_the_rows_are_read() -> None:
    calls: list[str] = []

    def fallback(item_id: str) -> dict[str, object] | None:
        calls.append(item_id)
        return {"brand": "late"} if item_id == "known-late" else None

    cache = ItemCache(fallback=fallback)
    c = cache.gather(["known-late", "nowhere"])
    assert c.rows[0] != 0 and c.rows[1] == 0
    assert cache.vocabularies[BRAND].values[int(c.codes[0, BRAND])] == "late"
    assert calls == ["known-late", "nowhere"]


@pytest.mark.parametrize("rows", [1, 1500])
def test_the_columns_grow_past_their_first_size(rows: int) -> None:
    cache = ItemCache()
    for k in range(rows):
        cache.put(f"sku-{k}", {"brand": f"b{k}", "text_vector": [float(k), 1.0]})
    c = cache.gather([f"sku-{k}" for k in range(rows)])
    assert [cache.vocabularies[BRAND].values[int(x)] for x in c.codes[:, BRAND]] == \
        [f"b{k}" for k in range(rows)]
    assert c.text_similarity(np.array([1.0, 0.0], dtype=np.float32)).tolist() == \
        [float(k) for k in range(rows)]
