"""Benchmarks of streamrank beside reference implementations, in one run (``python -m bench``)."""

__all__ = ["BENCHMARKS"]

#: Benchmark name -> module (each has ``run(ctx) -> Section``), in the order they run.
BENCHMARKS: dict[str, str] = {
    "scoring": "bench.scoring",
    "learner": "bench.learner",
    "snapshots": "bench.snapshots",
    "http": "bench.http",
    "freshness": "bench.freshness",
    "throughput": "bench.throughput",
}
