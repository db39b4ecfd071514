"""Versioned parameter snapshots, encoded without pickle and checked on decode.

Layout of an encoded snapshot (all little-endian)::

    b"SRK1" | u32 header length | header (UTF-8 JSON) | array bytes, back to back

The header is padded with spaces so that the array bytes start 8-byte aligned: the
arrays are read in place (``np.frombuffer``), and numpy gathers from a misaligned array
many times slower (``ndarray.take`` even copies the whole array first). An array that is
misaligned anyway (an older snapshot, or one after an odd-sized array) is copied once.

The header holds the version, creation time, examples trained on, free-form ``meta``
(JSON values only), and for each array its name, dtype, shape and byte range, plus a
CRC-32 checksum of the array bytes (it catches corruption; it is no signature: whoever
can write the Redis keys can write a matching checksum, so Redis must be protected with
AUTH/TLS, see docs/reliability.md). :func:`decode` refuses anything that is not this
format, whose checksum does not match, or whose dtype is not a plain numeric one, so a
value in Redis can never make the reader run code.

Examples
--------
>>> import numpy as np
>>> snap = Snapshot(version=3, created_ms=1764489600000, examples=12,
...                 arrays={"w": np.arange(4, dtype=np.float32)}, meta={"bits": 2})
>>> back = decode(encode(snap))
>>> back.version, back.model_version, back.arrays["w"].tolist(), back.meta
(3, 'v3', [0.0, 1.0, 2.0, 3.0], {'bits': 2})
>>> bool(back.arrays["w"].flags.aligned), len(encode(snap)) % 8
(True, 0)
>>> decode(b"not a snapshot")
Traceback (most recent call last):
...
learner.snapshot.SnapshotError: not a streamrank snapshot (bad magic bytes)
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

__all__ = ["MAGIC", "Snapshot", "SnapshotError", "decode", "encode"]

MAGIC = b"SRK1"
_ALLOWED_DTYPES = {"<f4", "<f8", "<i4", "<i8", "<u4", "<u8", "|u1", "|i1"}


class SnapshotError(ValueError):
    """An encoded snapshot is malformed, corrupted or of an unknown format."""


@dataclass
class Snapshot:
    """One version of the served model parameters."""

    version: int
    created_ms: int
    examples: int
    arrays: dict[str, npt.NDArray[Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model_version(self) -> str:
        """The version as the contract spells it (``"v118"``)."""
        return f"v{self.version}"


def _checksum(parts: list[bytes | memoryview]) -> str:
    crc = 0
    for p in parts:
        crc = zlib.crc32(p, crc)
    return f"crc32:{crc:08x}"


def encode(snap: Snapshot) -> bytes:
    """Serialise a snapshot to bytes (see the module docstring for the layout)."""
    specs, blobs, offset = [], [], 0
    for name, arr in snap.arrays.items():
        a = np.ascontiguousarray(arr)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype.str not in _ALLOWED_DTYPES:
            raise SnapshotError(f"array {name!r}: dtype {a.dtype} cannot go into a snapshot")
        raw = memoryview(a).cast("B")  # no copy
        specs.append({"name": name, "dtype": a.dtype.str, "shape": list(a.shape),
                      "offset": offset, "nbytes": raw.nbytes})
        blobs.append(raw)
        offset += raw.nbytes
    header = orjson.dumps({
        "version": snap.version, "created_ms": snap.created_ms, "examples": snap.examples,
        "meta": snap.meta, "arrays": specs, "checksum": _checksum(blobs),
    })
    header += b" " * (-(8 + len(header)) % 8)  # the arrays start 8-byte aligned
    # one allocation, one copy of each array
    out = bytearray(8 + len(header) + offset)
    out[:4] = MAGIC
    struct.pack_into("<I", out, 4, len(header))
    pos = 8 + len(header)
    out[8:pos] = header
    for raw in blobs:
        out[pos:pos + raw.nbytes] = raw
        pos += raw.nbytes
    return bytes(out)


def decode(data: bytes, verify: bool = True) -> Snapshot:
    """Parse bytes made by :func:`encode`; raise :class:`SnapshotError` on anything else."""
    if len(data) < 8 or data[:4] != MAGIC:
        raise SnapshotError("not a streamrank snapshot (bad magic bytes)")
    (hlen,) = struct.unpack_from("<I", data, 4)
    start = 8 + hlen
    if start > len(data):
        raise SnapshotError("truncated snapshot header")
    try:
        header = orjson.loads(data[8:start])
        specs = header["arrays"]
        body = memoryview(data)[start:]
        arrays: dict[str, npt.NDArray[Any]] = {}
        for s in specs:
            if s["dtype"] not in _ALLOWED_DTYPES:
                raise SnapshotError(f"array {s['name']!r}: dtype {s['dtype']} is not allowed")
            lo, hi = int(s["offset"]), int(s["offset"]) + int(s["nbytes"])
            if lo < 0 or hi > len(body):
                raise SnapshotError(f"array {s['name']!r} runs past the end of the snapshot")
            arr = np.frombuffer(body[lo:hi], dtype=np.dtype(s["dtype"]))
            if not arr.flags.aligned:  # misaligned views make every gather slow
                arr = arr.copy()
            arrays[s["name"]] = arr.reshape(s["shape"])
        if verify and _checksum([body]) != header["checksum"]:
            raise SnapshotError("snapshot checksum mismatch: the bytes were corrupted or altered")
        return Snapshot(version=int(header["version"]), created_ms=int(header["created_ms"]),
                        examples=int(header["examples"]), arrays=arrays,
                        meta=dict(header.get("meta") or {}))
    except SnapshotError:
        raise
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError) as exc:
        raise SnapshotError(f"malformed snapshot header: {exc}") from None
