"""The HTTP scorer: reads snapshots, ranks candidates, logs impressions."""

__all__: list[str] = []
