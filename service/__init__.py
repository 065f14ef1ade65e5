"""dropprice service: HTTP API, Redis store, re-fit worker and CLI wiring."""

__all__: list[str] = []
