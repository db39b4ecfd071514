"""What a benchmark reports: figures measured beside a reference, with the target they answer.

A :class:`Figure` holds our number, the reference's number measured in the same run, their
ratio (ours / reference) and, when the issue sets one, a :class:`Target` that says pass or
fail. A benchmark returns a :class:`Section`: its figures plus free-form ``details`` for
the JSON report. :func:`render_table` prints every section as one table.

Examples
--------
>>> f = Figure("rank 100 candidates, p99", "ms", ours=0.21, ref_name="VW", ref=0.84,
...            target=Target("ours", "<", 0.5, "< 0.5 ms"))
>>> round(f.ratio, 2), f.passed
(0.25, True)
>>> g = Figure("learner", "examples/s", ours=9e4, ref_name="River", ref=2e4,
...            target=Target("ratio", ">=", 10, ">= 10x River"))
>>> g.ratio, g.passed
(4.5, False)
>>> print(render_table([Section("demo", [f, g])]))  # doctest: +NORMALIZE_WHITESPACE
| figure | ours | reference | ratio | target | result |
|---|---|---|---|---|---|
| **demo** | | | | | |
| rank 100 candidates, p99 | 0.210 ms | VW 0.840 ms | 0.25x | < 0.5 ms | pass |
| learner | 90k examples/s | River 20k examples/s | 4.50x | >= 10x River | **FAIL** |
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

__all__ = ["Figure", "Section", "Target", "format_value", "render_table"]

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass(frozen=True)
class Target:
    """A goal from the issue: ``on`` (our value or the ratio) ``op`` ``value``."""

    on: Literal["ours", "ratio"]
    op: Literal["<", "<=", ">", ">="]
    value: float
    text: str

    def check(self, ours: float | None, ratio: float | None) -> bool | None:
        """Whether the target is met; ``None`` when the figure could not be measured."""
        x = ours if self.on == "ours" else ratio
        if x is None or math.isnan(x):
            return None
        return _OPS[self.op](x, self.value)


@dataclass
class Figure:
    """One measured figure, ours beside a reference."""

    name: str
    unit: str
    ours: float | None
    ref_name: str | None = None
    ref: float | None = None
    target: Target | None = None
    #: Set when the target depends on more than one number (e.g. rate *and* lag slope).
    passed_override: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """``ours / reference``, ``None`` when either is missing or the reference is 0."""
        if self.ours is None or self.ref is None or self.ref == 0:
            return None
        return self.ours / self.ref

    @property
    def passed(self) -> bool | None:
        """Pass/fail against the target; ``None`` when there is no target or no value."""
        if self.passed_override is not None:
            return self.passed_override
        return self.target.check(self.ours, self.ratio) if self.target else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with the derived ratio and result."""
        d = asdict(self)
        d.pop("passed_override")
        d["ratio"] = self.ratio
        d["passed"] = self.passed
        return d


@dataclass
class Section:
    """What one benchmark measured: figures for the table, details for the JSON."""

    name: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None


def format_value(x: float | None, unit: str) -> str:
    """A short human form: three significant figures, k/M for large counts.

    >>> format_value(0.2134, "ms"), format_value(123456, "examples/s"), format_value(None, "ms")
    ('0.213 ms', '123k examples/s', 'n/a')
    >>> format_value(0.0, ""), format_value(3.0, "")
    ('0', '3')
    """
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if unit in ("", "events") and float(x).is_integer() and abs(x) < 1e4:  # counts
        return str(int(x))
    a = abs(x)
    if a >= 1e6 and unit not in ("ms", "s", "MiB", "bytes"):
        s = f"{x / 1e6:.3g}M"
    elif a >= 1e4 and unit not in ("ms", "s", "MiB", "bytes"):
        s = f"{x / 1e3:.3g}k"
    elif a >= 100:
        s = f"{x:.0f}"
    elif a >= 1:
        s = f"{x:.3g}"
    else:
        s = f"{x:.3f}"
    if "e" in s:  # 3g may pick exponent notation for e.g. 1.0e3
        s = f"{x:.1f}"
    return f"{s} {unit}".strip()


def _result(f: Figure) -> str:
    p = f.passed
    if f.target is None and f.passed_override is None:
        return ""
    return "pass" if p else ("**FAIL**" if p is False else "not measured")


def render_table(sections: Sequence[Section]) -> str:
    """All sections as one Markdown table (it reads fine in a terminal too)."""
    rows = ["| figure | ours | reference | ratio | target | result |", "|---|---|---|---|---|---|"]
    for s in sections:
        rows.append(f"| **{s.name}** | | | | | |")
        if s.error:
            rows.append(f"| (did not run: {s.error}) | | | | | **FAIL** |")
        for f in s.figures:
            ref = f"{f.ref_name} {format_value(f.ref, f.unit)}" if f.ref_name else ""
            ratio = f"{f.ratio:.2f}x" if f.ratio is not None else ""
            rows.append(f"| {f.name} | {format_value(f.ours, f.unit)} | {ref} | {ratio} | "
                        f"{f.target.text if f.target else ''} | {_result(f)} |")
    return "\n".join(rows)
