"""The learner's complete state as a flat mapping of names to numpy arrays.

Every stateful part of the learner (FTRL, the dense tables and their AdamW moments, the
examination weights, the item counters, the trainer's counters) exports its state with a
``state()`` method and restores it in place with ``load_state()``; a part's names are
prefixed with the part's name (``ftrl.z``, ``dense.adam.exp_avg.dense_item``, ...). Plain
numeric arrays only, so a checkpoint (:mod:`learner.checkpoint`) stores them with the
snapshot encoding and never pickles anything.

Examples
--------
>>> import numpy as np
>>> state = prefixed("ftrl", {"z": np.zeros(3)})
>>> sorted(state), sorted(section(state, "ftrl"))
(['ftrl.z'], ['z'])
>>> target = np.ones(3)
>>> copy_into(target, section(state, "ftrl"), "z")
>>> target.tolist()
[0.0, 0.0, 0.0]
>>> copy_into(np.ones(4), section(state, "ftrl"), "z")
Traceback (most recent call last):
...
learner.statedict.StateError: state 'z' has shape (3,) and dtype float64; this learner needs shape (4,) and dtype float64 (was it saved with other settings?)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["StateDict", "StateError", "copy_into", "int_array", "prefixed", "scalar", "section"]

#: ``name -> array``: a learner part's state (copies, safe to keep or encode).
StateDict = dict[str, npt.NDArray[Any]]


class StateError(ValueError):
    """A saved state does not fit this learner (a missing array, another shape or dtype)."""


def prefixed(prefix: str, state: Mapping[str, npt.NDArray[Any]]) -> StateDict:
    """``state`` with every name prefixed by ``prefix.``."""
    return {f"{prefix}.{name}": arr for name, arr in state.items()}


def section(state: Mapping[str, npt.NDArray[Any]], prefix: str) -> StateDict:
    """The entries of ``state`` under ``prefix.``, with the prefix removed."""
    head = f"{prefix}."
    return {name[len(head):]: arr for name, arr in state.items() if name.startswith(head)}


def copy_into(target: npt.NDArray[Any], state: Mapping[str, npt.NDArray[Any]], name: str
              ) -> None:
    """Copy ``state[name]`` into ``target`` in place; refuse another shape or dtype."""
    if name not in state:
        raise StateError(f"state {name!r} is missing (was it saved by another version?)")
    arr = np.asarray(state[name])
    if arr.shape != target.shape or arr.dtype != target.dtype:
        raise StateError(f"state {name!r} has shape {arr.shape} and dtype {arr.dtype}; this "
                         f"learner needs shape {target.shape} and dtype {target.dtype} (was it "
                         "saved with other settings?)")
    target[...] = arr


def scalar(state: Mapping[str, npt.NDArray[Any]], name: str) -> int | None:
    """An integer saved as a one-element int64 array (``None`` saved as an empty one).

    >>> scalar({"n": np.array([7])}, "n"), scalar({"n": np.array([], dtype=np.int64)}, "n")
    (7, None)
    """
    if name not in state:
        raise StateError(f"state {name!r} is missing (was it saved by another version?)")
    arr = np.asarray(state[name]).ravel()
    return int(arr[0]) if arr.size else None


def int_array(value: int | None) -> npt.NDArray[np.int64]:
    """An integer (or ``None``) as :func:`scalar` reads it back."""
    return np.array([] if value is None else [value], dtype=np.int64)
