"""Features, model math (FTRL-Proximal) and parameter snapshots."""

__all__: list[str] = []
