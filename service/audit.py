"""Append-only audit log of operator-visible changes (a Redis stream).

Every config change, surface publish, rollback and approval is one entry of the
stream ``dp:{ops}:audit`` (:func:`service.keys.audit_log`), appended with
``XADD`` and never trimmed or edited. Entries carry:

==========  ==============================================================
field       contents
==========  ==============================================================
``kind``    what happened, dotted lower case: ``config.apply``,
            ``config.rollback``, ``config.seed``, ``surface.publish``, ``surface.rollback``,
            ``refit.approve``, ``refit.reject``, ...
``actor``   who did it (``--actor``, the API key's name, ``$USER``, a worker id)
``at``      when, ISO 8601 UTC with milliseconds (the entry id also holds the
            Redis server's time in ms)
``detail``  JSON object: what changed (a config diff, a version id, a reason)
==========  ==============================================================

Other modules record with :func:`record_audit` and read with :func:`read_audit`;
``GET /v1/audit?since=...`` serves the same records. The stream lives in the
``{ops}`` hash slot with the config versions, so a config apply and its audit
entry are written by one atomic script (:mod:`service.config.versions`). The Redis
calls are :mod:`service.store.audit_log`'s.

Example:
    >>> record_audit(store, "surface.publish", "worker-1", {"version": "v12"})  # doctest: +SKIP
    '1764460800000-0'
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pricing.fields import ZONED_TIME
from service.store.audit_log import append_audit_entry, audit_entries

__all__ = [
    "SINCE_PATTERN",
    "AuditRecord",
    "checked_since",
    "parse_since",
    "read_audit",
    "record_audit",
]

KIND_RE = re.compile(r"^[a-z][a-z_]*(\.[a-z][a-z_]*)*$")
_STREAM_ID_RE = re.compile(r"^\d+(-\d+)?$")
SINCE_PATTERN = rf"^(?:{ZONED_TIME}|[0-9]{{1,15}}(?:-[0-9]{{1,19}})?)$"
"""What :func:`parse_since` takes, as a JSON Schema ``pattern``: a zoned ISO 8601 time
(:data:`pricing.fields.ZONED_TIME`), epoch milliseconds, or an entry id."""
_SINCE_RE = re.compile(SINCE_PATTERN)
_SINCE_FORMS = (
    "since must be an ISO 8601 time with seconds and a zone (2026-12-05T18:00:00Z), epoch "
    "milliseconds, or an audit entry id like 1764460800000-0"
)


def checked_since(since: str | None) -> str | None:
    """``since`` as given when it has one of the forms of :data:`SINCE_PATTERN`.

    Raises:
        ValueError: another form (the message lists the accepted ones).
    """
    if since is not None and _SINCE_RE.fullmatch(since) is None:
        raise ValueError(f"{_SINCE_FORMS}, got {since[:80]!r}")
    return since


class AuditRecord(NamedTuple):
    """One audit entry as read back."""

    id: str
    """Stream entry id (``<ms>-<seq>``); strictly increasing."""
    kind: str
    actor: str
    at: datetime
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "actor": self.actor,
            "at": self.at.isoformat(timespec="milliseconds"),
            "detail": self.detail,
        }


def now_iso() -> str:
    """The current UTC time as stored in ``at``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def audit_fields(kind: str, actor: str, detail: Mapping[str, Any]) -> dict[str, str]:
    """Validate and encode one entry's fields (shared with the config apply script).

    Raises:
        ValueError: ``kind`` is not dotted lower case, ``actor`` is empty, or
            ``detail`` is not JSON-serialisable.
    """
    if not KIND_RE.match(kind):
        raise ValueError(f"audit kind must be dotted lower case like 'config.apply', got {kind!r}")
    if not actor or not actor.strip():
        raise ValueError("audit actor must name who made the change, got an empty string")
    try:
        encoded = json.dumps(dict(detail), sort_keys=True, default=str)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"audit detail must be a JSON object, got {detail!r}: {exc}") from None
    return {"kind": kind, "actor": actor.strip(), "at": now_iso(), "detail": encoded}


def record_audit(store: Any, kind: str, actor: str, detail: Mapping[str, Any]) -> str:
    """Append one record to the audit log and return its entry id.

    Args:
        store: the :class:`~service.store.PriceStore` (or its redis-py client).
        kind: dotted lower case, e.g. ``surface.publish``.
        actor: who did it.
        detail: JSON object describing what changed.

    Returns:
        The stream entry id, e.g. ``"1764460800000-0"``.

    Raises:
        ValueError: invalid ``kind``/``actor``/``detail`` (nothing is written).
        redis.RedisError: Redis is unreachable.
    """
    fields = audit_fields(kind, actor, detail)
    return append_audit_entry(store, fields)


def parse_since(since: str | datetime | None) -> str:
    """Turn ``since`` into an exclusive XRANGE start.

    Accepts an entry id (``1764460800000-3``: records after it), epoch milliseconds
    (``1764460800000``), or an ISO 8601 time with a zone (records at or after it).

    Raises:
        ValueError: anything else (the message lists the accepted forms).
    """
    if since is None or since == "":
        return "-"
    if isinstance(since, datetime):
        if since.tzinfo is None:
            raise ValueError(f"since must carry a time zone, got {since.isoformat()}")
        return str(int(since.timestamp() * 1000))
    text = since.strip()
    if _STREAM_ID_RE.match(text):
        return f"({text}" if "-" in text else text
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        at = None
    if at is None or at.tzinfo is None:
        raise ValueError(
            "since must be an ISO 8601 time with a zone (2026-12-05T18:00:00Z), epoch "
            f"milliseconds, or an audit entry id like 1764460800000-0, got {since!r}"
        )
    return str(int(at.timestamp() * 1000))


def read_audit(
    store: Any,
    *,
    since: str | datetime | None = None,
    kind: str | None = None,
    limit: int = 100,
) -> list[AuditRecord]:
    """Records after ``since`` (oldest first), optionally of one kind or kind prefix.

    Args:
        store: the :class:`~service.store.PriceStore` (or its redis-py client).
        since: see :func:`parse_since`; ``None`` reads from the beginning.
        kind: ``config`` matches ``config.apply`` and ``config.rollback``.
        limit: most records returned (1..10000).

    Raises:
        ValueError: bad ``since`` or ``limit``.
    """
    if not 1 <= limit <= 10_000:
        raise ValueError(f"limit must be in 1..10000, got {limit}")
    start = parse_since(since)
    out: list[AuditRecord] = []
    while len(out) < limit:
        batch = audit_entries(store, start, max(limit, 100))
        if not batch:
            break
        for entry_id, fields in batch:
            rec_kind = fields.get("kind", "")
            start = f"({entry_id}"
            if kind is not None and rec_kind != kind and not rec_kind.startswith(kind + "."):
                continue
            try:
                detail = json.loads(fields.get("detail", "{}"))
            except ValueError:
                detail = {"raw": fields.get("detail", "")}
            at_text = fields.get("at", "")
            try:
                at = datetime.fromisoformat(at_text)
            except ValueError:
                at = datetime.fromtimestamp(int(entry_id.split("-")[0]) / 1000, UTC)
            out.append(AuditRecord(entry_id, rec_kind, fields.get("actor", ""), at, detail))
            if len(out) >= limit:
                break
    return out
