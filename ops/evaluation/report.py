"""Tables of a replay's results: Markdown for the docs, the same rows for a console.

Examples
--------
>>> result = {"models": ["a", "upstream"], "counts": {"served": 2, "labelled_lists": 1},
...           "overall": {"a": {"mrr": 1.0, "true_ndcg_at_10": 0.8, "lists": 1},
...                       "upstream": {"mrr": 0.5, "true_ndcg_at_10": 0.6, "lists": 1}},
...           "windows": []}
>>> print(overall_table(result, columns=("mrr", "true_ndcg_at_10", "oracle_share")))
| model | MRR | true NDCG@10 | oracle share |
|---|---|---|---|
| a | **1.000** | **0.800** | **50.0%** |
| upstream | 0.500 | 0.600 | 0.0% |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "oracle_share", "overall_table", "paired_table", "progress_line",
           "window_table"]

#: column key -> (header, format, higher is better)
COLUMNS: dict[str, tuple[str, str, bool]] = {
    "mrr": ("MRR", "{:.3f}", True),
    "ndcg_at_10": ("NDCG@10", "{:.3f}", True),
    "ips_mrr": ("MRR (IPS)", "{:.3f}", True),
    "ips_ndcg_at_10": ("NDCG@10 (IPS)", "{:.3f}", True),
    "auc": ("AUC", "{:.3f}", True),
    "log_loss": ("log-loss", "{:.3f}", False),
    "ece": ("ECE", "{:.4f}", False),
    "true_ndcg_at_10": ("true NDCG@10", "{:.3f}", True),
    "oracle_share": ("oracle share", "{:.1%}", True),
    "seconds": ("CPU s", "{:.0f}", False),
}


def oracle_share(model: float | None, upstream: float | None) -> float | None:
    """Share of the oracle's true-NDCG gain over upstream that a model reaches:
    ``(model - upstream) / (1 - upstream)`` (the oracle's NDCG is 1).

    >>> oracle_share(0.6, 0.5)
    0.19999999999999996
    """
    if model is None or upstream is None or upstream >= 1.0:
        return None
    return (model - upstream) / (1.0 - upstream)


def _value(result: Mapping[str, Any], model: str, key: str) -> float | None:
    summary = result["overall"][model]
    if key == "oracle_share":
        up = result["overall"].get("upstream", {}).get("true_ndcg_at_10")
        return oracle_share(summary.get("true_ndcg_at_10"), up)
    if key == "seconds":
        s = result.get("seconds", {}).get(model)
        return None if s is None else s["score"] + s["learn"]
    v = summary.get(key)
    return None if v is None else float(v)


def available(result: Mapping[str, Any], columns: Sequence[str]) -> list[str]:
    """The columns with a figure for at least one model."""
    return [c for c in columns
            if any(_value(result, m, c) is not None for m in result["models"])]


#: columns shown with their standard error over lists (``± se``)
WITH_SE = {"mrr": "mrr_se", "ndcg_at_10": "ndcg_at_10_se"}


def overall_table(result: Mapping[str, Any], columns: Sequence[str] = tuple(COLUMNS),
                  bold_best: bool = True, se: bool = False) -> str:
    """One row per model; the best figure of each column in bold; with ``se``, MRR and
    NDCG@10 carry their standard error over lists."""
    cols = available(result, columns)
    models = result["models"]
    best: dict[str, float] = {}
    for c in cols:
        values = [v for m in models if (v := _value(result, m, c)) is not None]
        if values and c != "seconds":
            best[c] = max(values) if COLUMNS[c][2] else min(values)
    lines = ["| model | " + " | ".join(COLUMNS[c][0] for c in cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for m in models:
        cells = []
        for c in cols:
            v = _value(result, m, c)
            text = "–" if v is None else COLUMNS[c][1].format(v)
            if bold_best and v is not None and c in best and COLUMNS[c][1].format(v) == \
                    COLUMNS[c][1].format(best[c]):
                text = f"**{text}**"
            err = result["overall"][m].get(WITH_SE.get(c, ""))
            if se and v is not None and err is not None:
                text += f" ± {err:.3f}"
            cells.append(text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired_table(result: Mapping[str, Any]) -> str | None:
    """The reference model's per-list lead over each other model on MRR and NDCG@10, with
    its standard error (paired over the same lists); ``None`` when the result has none.

    >>> result = {"paired": {"reference": "full", "models": {"river": {
    ...     "lists": 9, "mrr_diff": 0.0061, "mrr_diff_se": 0.0015,
    ...     "ndcg_at_10_diff": 0.0058, "ndcg_at_10_diff_se": 0.0016}}}}
    >>> print(paired_table(result))
    | full minus | lists | MRR | NDCG@10 |
    |---|---|---|---|
    | river | 9 | +0.0061 ± 0.0015 (4.1 se) | +0.0058 ± 0.0016 (3.6 se) |
    """
    paired = result.get("paired")
    if not paired or not paired.get("models"):
        return None

    def cell(d: float | None, se: float | None) -> str:
        if d is None:
            return "–"
        if not se:
            return f"{d:+.4f}"
        return f"{d:+.4f} ± {se:.4f} ({d / se:.1f} se)"

    lines = [f"| {paired['reference']} minus | lists | MRR | NDCG@10 |", "|---|---|---|---|"]
    for m, f in paired["models"].items():
        lines.append(f"| {m} | {f['lists']} | {cell(f['mrr_diff'], f['mrr_diff_se'])} | "
                     f"{cell(f['ndcg_at_10_diff'], f['ndcg_at_10_diff_se'])} |")
    return "\n".join(lines)


def window_table(result: Mapping[str, Any], key: str) -> str:
    """One row per time window, one column per model, for one metric."""
    models = result["models"]
    header, fmt, _ = COLUMNS[key]
    lines = [f"| lists ({header}) | labelled | " + " | ".join(models) + " |",
             "|---" * (len(models) + 2) + "|"]
    for w in result["windows"]:
        figures = w["models"]
        labelled = max((figures[m].get("lists") or 0) for m in models)
        cells = ["–" if figures[m].get(key) is None else fmt.format(figures[m][key])
                 for m in models]
        lines.append(f"| {w['first'] + 1}–{w['last'] + 1} | {labelled} | " + " | ".join(cells)
                     + " |")
    return "\n".join(lines)


def progress_line(first: int, last: int, figures: Mapping[str, Mapping[str, Any]],
                  keys: Sequence[str] = ("mrr", "ips_mrr", "true_ndcg_at_10")) -> str:
    """One console line for a finished window."""
    parts = [f"lists {first + 1:>7}-{last + 1:<7}"]
    for key in keys:
        values = {m: f.get(key) for m, f in figures.items()}
        if all(v is None for v in values.values()):
            continue
        header, fmt, _ = COLUMNS[key]
        parts.append(f"{header}: " + " ".join(
            f"{m} {'–' if v is None else fmt.format(v)}" for m, v in values.items()))
    return " | ".join(parts)
