"""Operations: configuration, local services (Kafka, Redis), the launcher and the CLI."""

__all__: list[str] = []
