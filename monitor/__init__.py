"""Online quality, drift signals, alarms and the operators' dashboard."""

__all__: list[str] = []
