"""Event schemas, topic names, the producer SDK and the Faust stream processors."""

__all__: list[str] = []
