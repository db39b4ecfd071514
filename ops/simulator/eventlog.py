"""Event logs: contract events as JSON lines, written from the simulator, read by replays.

One line per event, in the order the events happened::

    {"topic": "items" | "impressions" | "interactions", "ts": <epoch ms>, "value": {...}}

``value`` is the contract event exactly as a producer would send it. An impression line
may carry ``"truth": {"relevance": [...], "examination": [...]}``, the true relevance of its
items and the probability that each position is looked at, in position order, when the
log comes from a simulator that knows them; nothing but an evaluation reads
it (the worker's code never sees it: the replay hands it only ``value``).

:func:`simulate_log` writes such a log from a :class:`~ops.simulator.traffic.Simulator`
served by a logging policy: the upstream order, as in real logs, optionally with a small
random swap of two neighbours for exploration (each item then logs its ``propensity``,
the probability that the policy put it where it is).

Examples
--------
>>> import io
>>> from ops.simulator.traffic import Simulator
>>> buf = io.StringIO()
>>> stats = simulate_log(Simulator(seed=0), EventLogWriter(buf), n_requests=50, explore=0.2)
>>> stats
{'items': 300, 'impressions': 50, 'interactions': 48, 'swapped': 8}
>>> lines = list(read_log(io.StringIO(buf.getvalue())))
>>> [line.topic for line in lines[299:303]]
['items', 'impressions', 'impressions', 'interactions']
>>> len(lines[300].truth["relevance"]), lines[300].value["items"][0]["propensity"]
(20, 0.977778)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from ops.simulator.traffic import Simulator

__all__ = ["TOPICS", "EventLogWriter", "LogLine", "read_log", "simulate_log", "swap_propensities"]

#: The contract topics a log line can name (without the deployment's prefix).
TOPICS = ("items", "impressions", "interactions")


@dataclass(frozen=True)
class LogLine:
    """One event of a log."""

    topic: str
    value: dict[str, Any]
    ts: int | None = None
    #: Ground truth a simulator attached (``relevance``, ``examination``), else ``None``.
    truth: dict[str, Any] | None = None


class EventLogWriter:
    """Appends events to a JSON-lines log; also an :class:`~ops.simulator.traffic.EventSink`.

    Parameters
    ----------
    out
        A path (opened for writing, closed by :meth:`close`) or an open text file.
    """

    def __init__(self, out: str | Path | IO[str]) -> None:
        if isinstance(out, (str, Path)):
            self._file: IO[str] = open(out, "w", encoding="utf-8")  # noqa: SIM115
            self._owned = True
        else:
            self._file, self._owned = out, False
        self.counts = dict.fromkeys(TOPICS, 0)

    def write(self, topic: str, value: Mapping[str, Any], ts: int | None = None,
              truth: Mapping[str, Any] | None = None) -> None:
        """One line; ``ts`` defaults to the event's own."""
        if topic not in TOPICS:
            raise ValueError(f"topic must be one of {TOPICS}, got {topic!r}")
        line: dict[str, Any] = {"topic": topic, "ts": ts if ts is not None else value.get("ts"),
                                "value": value}
        if truth is not None:
            line["truth"] = truth
        self._file.write(orjson.dumps(line, option=orjson.OPT_SERIALIZE_NUMPY).decode())
        self._file.write("\n")
        self.counts[topic] += 1

    def item(self, event: Mapping[str, Any]) -> None:
        """A catalog event."""
        self.write("items", event)

    def impression(self, event: Mapping[str, Any],
                   truth: Mapping[str, Any] | None = None) -> None:
        """A served list, with the simulator's truth about it if known."""
        self.write("impressions", event, truth=truth)

    def interaction(self, event: Mapping[str, Any]) -> None:
        """A click, add-to-cart or purchase."""
        self.write("interactions", event)

    def close(self) -> None:
        """Flush; close the file if this writer opened it."""
        self._file.flush()
        if self._owned:
            self._file.close()

    def __enter__(self) -> EventLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_log(source: str | Path | IO[str]) -> Iterator[LogLine]:
    """The lines of a log, in order; a malformed line raises ``ValueError`` naming it."""
    owned = isinstance(source, (str, Path))
    f = open(source, encoding="utf-8") if owned else source  # noqa: SIM115
    try:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                line = orjson.loads(raw)
                topic, value = line["topic"], line["value"]
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"log line {n}: not a log line ({exc!r}); expected "
                                 '{"topic": ..., "value": {...}}') from None
            if topic not in TOPICS:
                raise ValueError(f"log line {n}: topic must be one of {TOPICS}, got {topic!r}")
            yield LogLine(topic=topic, value=value, ts=line.get("ts"), truth=line.get("truth"))
    finally:
        if owned:
            f.close()


def swap_propensities(n: int, explore: float, depth: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Propensities of the swap policy: with probability ``explore`` swap positions
    ``k, k + 1`` for ``k`` uniform over the first ``depth - 1`` pairs.

    Returns ``(stay, moved)``, each ``(n,)``: the probability that the item upstream ranks
    at position ``p`` stays there, and that it moves one step (to a given neighbour).

    >>> stay, moved = swap_propensities(4, explore=0.3, depth=3)
    >>> stay.round(3).tolist(), moved.round(3).tolist()
    ([0.85, 0.7, 0.85, 1.0], [0.15, 0.15, 0.15, 0.0])
    """
    m = min(depth, n)
    pairs = m - 1
    stay, moved = np.ones(n), np.zeros(n)
    if pairs < 1 or explore <= 0:
        return stay, moved
    p = np.arange(1, n + 1)
    touching = ((p - 1 >= 1) & (p - 1 <= pairs)).astype(float) + (p <= pairs).astype(float)
    stay = 1.0 - explore * touching / pairs
    moved = np.where(touching > 0, explore / pairs, 0.0)
    return stay, moved


def simulate_log(sim: Simulator, sink: EventLogWriter, n_requests: int, *,
                 explore: float = 0.0, explore_depth: int = 10, shuffle_top: int = 0,
                 seed: int = 0,
                 on_progress: Callable[[int], None] | None = None,
                 progress_every: int = 1000) -> dict[str, int]:
    """Write the catalog, then ``n_requests`` searches served by the logging policy with
    their interactions, to ``sink``.

    Parameters
    ----------
    sim
        The traffic source; its true relevance goes on every impression line.
    sink
        Where the events go.
    n_requests
        How many searches.
    explore
        Probability of swapping two neighbours among the first ``explore_depth``
        positions; then every item logs its ``propensity``.
    shuffle_top
        Serve the first ``shuffle_top`` candidates of every list in a uniformly random
        order (the RandTop-k intervention): each lands at its position with propensity
        ``1 / shuffle_top``, logged; the items below keep theirs (propensity 1). Clicks
        on such a log are not tied to the upstream order, so plain click metrics on it
        rank models by relevance, not by how well they copy the position bias. Not
        combined with ``explore``.
    seed
        Seed of the exploration draws (separate from the simulator's streams).
    on_progress
        Called with the number of requests done every ``progress_every`` requests.

    Returns
    -------
    dict
        Counts: items, impressions, interactions, swapped lists.
    """
    if not 0.0 <= explore <= 1.0:
        raise ValueError(f"explore must be in [0, 1], got {explore}")
    if shuffle_top < 0 or (shuffle_top and explore):
        raise ValueError("shuffle_top must be at least 0, and is not combined with explore")
    rng = np.random.default_rng(seed)
    for event in sim.catalog_events():
        sink.item(event)
    swapped = interactions = 0
    for n in range(1, n_requests + 1):
        request = sim.next_request()
        served: list[str] = list(request.item_ids)
        stay, moved = swap_propensities(len(served), explore, explore_depth)
        propensity: Sequence[float] | None = None
        if shuffle_top > 1:
            top = min(shuffle_top, len(served))
            order = rng.permutation(top)
            served[:top] = [served[i] for i in order]
            propensity = [1.0 / top] * top + [1.0] * (len(served) - top)
            swapped += 1
        elif explore > 0:
            propensity = list(stay)
            if rng.random() < explore:
                k = int(rng.integers(min(explore_depth, len(served)) - 1))
                served[k], served[k + 1] = served[k + 1], served[k]
                propensity[k] = propensity[k + 1] = float(moved[k])
                swapped += 1
        impression_id = sim.new_impression_id()
        event = sim.impression_event(request, served, impression_id)
        if propensity is not None:
            for item, p in zip(event["items"], propensity):
                item["propensity"] = round(float(p), 6)
        sink.impression(event, truth={
            "relevance": [round(float(r), 6) for r in sim.relevance(request, served)],
            "examination": [round(float(e), 6) for e in
                            sim.click_model.examination(len(served))]})
        for interaction in sim.respond(request, served, impression_id):
            sink.interaction(interaction)
            interactions += 1
        if on_progress is not None and n % progress_every == 0:
            on_progress(n)
    return {"items": len(sim.catalog), "impressions": n_requests,
            "interactions": interactions, "swapped": swapped}
