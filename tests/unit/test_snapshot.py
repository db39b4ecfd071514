"""Snapshot encoding: round trip, and refusal of anything that is not a snapshot."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from learner.snapshot import MAGIC, Snapshot, SnapshotError, decode, encode


def _snap() -> Snapshot:
    rng = np.random.default_rng(0)
    return Snapshot(version=7, created_ms=1764489600123, examples=99,
                    arrays={"w": rng.normal(size=1024).astype(np.float32),
                            "counts": np.arange(6, dtype=np.int64).reshape(2, 3)},
                    meta={"hash_bits": 10, "features": ["a", "b"]})


def test_round_trip_keeps_every_field_and_array() -> None:
    snap = _snap()
    back = decode(encode(snap))
    assert (back.version, back.created_ms, back.examples, back.meta) == (
        7, 1764489600123, 99, {"hash_bits": 10, "features": ["a", "b"]})
    assert set(back.arrays) == {"w", "counts"}
    np.testing.assert_array_equal(back.arrays["w"], snap.arrays["w"])
    np.testing.assert_array_equal(back.arrays["counts"], snap.arrays["counts"])
    assert back.arrays["counts"].shape == (2, 3)


def test_a_flipped_byte_fails_the_checksum() -> None:
    blob = bytearray(encode(_snap()))
    blob[-5] ^= 0xFF
    with pytest.raises(SnapshotError, match="checksum"):
        decode(bytes(blob))


def test_truncated_snapshot_is_refused() -> None:
    blob = encode(_snap())
    with pytest.raises(SnapshotError):
        decode(blob[: len(blob) // 2])


def test_object_arrays_cannot_be_encoded() -> None:
    snap = Snapshot(version=1, created_ms=0, examples=0,
                    arrays={"x": np.array([object()], dtype=object)})
    with pytest.raises(SnapshotError, match="dtype"):
        encode(snap)


def test_pickle_bytes_are_refused() -> None:
    import pickle  # only to produce hostile input; never used to decode

    with pytest.raises(SnapshotError, match="magic"):
        decode(pickle.dumps({"w": [1, 2]}))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_decode_silently(data: bytes) -> None:
    try:
        decode(data)
    except SnapshotError:
        return
    pytest.fail("random bytes decoded as a snapshot")


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64))
def test_arbitrary_header_after_magic_is_refused(data: bytes) -> None:
    with pytest.raises(SnapshotError):
        decode(MAGIC + len(data).to_bytes(4, "little") + data)


def test_decoded_arrays_are_aligned_even_after_an_odd_sized_one() -> None:
    # headers of every length mod 8, and a float64 array after 3 bytes: decoded arrays
    # must be aligned (numpy gathers from misaligned ones many times slower)
    for pad in range(8):
        snap = Snapshot(version=1, created_ms=0, examples=0, meta={"x": "y" * pad},
                        arrays={"flags": np.array([1, 0, 1], dtype=np.uint8),
                                "w": np.linspace(0, 1, 5), "n": np.arange(3, dtype=np.int32)})
        data = encode(snap)
        back = decode(data)
        for name, arr in snap.arrays.items():
            assert back.arrays[name].flags.aligned, (pad, name)
            assert np.array_equal(back.arrays[name], arr)
        # the first array is read in place, without a copy
        assert not back.arrays["flags"].flags.owndata
