"""Every Redis key and channel dropprice uses, built in one place.

Keys of one SKU carry the SKU as a Redis Cluster hash tag (``dp:{sku}:...``) so they
live in one hash slot: the sale script and a per-SKU publish touch one node only,
and the service runs unchanged on a single node or a Redis Cluster. A handful of
global keys (the SKU index, the version registry) are read off the request path and
never combined with per-SKU keys in one command; the version registry shares the
``{_refit}`` slot with the re-fit lock (a fenced publish checks both in one script).

One builder per key: every key, its type and contents, the channels and the scripts
are documented in ``docs/redis-layout.md`` (a test checks that every builder here is
in that table and every key there has a builder here).

Channel ``dp:chan:updates`` (:data:`UPDATES_CHANNEL`) keeps each service process's
in-memory view current; ``dp:chan:config`` (:data:`CONFIG_CHANNEL`) announces a new
live config version.

SKU and market identifiers never contain ``{`` or ``}`` (see
:data:`service.config.models.Identifier`), so the tag is always the whole SKU.
"""

from __future__ import annotations

__all__ = [
    "PREFIX",
    "UPDATES_CHANNEL",
    "events",
    "inventory",
    "live",
    "live_seq",
    "live_version",
    "live_version_seq",
    "publish_seq",
    "quote_secret",
    "customer_secret",
    "seen",
    "served",
    "sales",
    "sold",
    "sku_index",
    "sku_meta",
    "sku_tag",
    "surface",
    "surface_guardrails",
    "surface_prefix",
    "surface_prices",
    "version_record",
    "versions",
    # operator config and audit (the {ops} hash slot)
    "CONFIG_CHANNEL",
    "audit_log",
    # stream entries no reader could decode
    "dead_letter_total",
    "dead_letters",
    "config_live",
    "config_seq",
    "config_version",
    "config_versions",
    # re-fit worker state (the {_refit} hash slot)
    "REFIT_TAG",
    "approval",
    "approval_surfaces",
    "approvals",
    "refit_fence",
    "refit_fit",
    "refit_fits",
    "refit_history",
    "refit_last",
    "refit_lock",
    "refit_record",
    "refit_records",
    "refit_requests",
]

PREFIX = "dp"
UPDATES_CHANNEL = f"{PREFIX}:chan:updates"


def sku_tag(sku: str) -> str:
    """The hash-tag prefix shared by every key of ``sku``: ``dp:{sku}``."""
    if "{" in sku or "}" in sku:
        raise ValueError(f"SKU must not contain '{{' or '}}', got {sku!r}")
    return f"{PREFIX}:{{{sku}}}"


def sku_meta(sku: str) -> str:
    """Catalog entry of a SKU (hash)."""
    return f"{sku_tag(sku)}:meta"


def inventory(sku: str, market: str) -> str:
    """Units-left counter of a SKU in a market (string integer)."""
    return f"{sku_tag(sku)}:inv:{market}"


def live(sku: str) -> str:
    """Live surface version per market of a SKU (hash ``market -> version``)."""
    return f"{sku_tag(sku)}:live"


def surface_prefix(sku: str) -> str:
    """Prefix of every surface key of a SKU (the sale script appends ``<v>:<market>``)."""
    return f"{sku_tag(sku)}:surface:"


def surface(sku: str, version: str, market: str) -> str:
    """Header of one published price surface (hash)."""
    return f"{surface_prefix(sku)}{version}:{market}"


def surface_prices(sku: str, version: str, market: str) -> str:
    """Price cells of one surface: float64 little-endian ``[N+1, T]`` (string)."""
    return f"{surface(sku, version, market)}:p"


def surface_guardrails(sku: str, version: str, market: str) -> str:
    """Guardrail code per cell of one surface: int8 ``[N+1, T]`` (string)."""
    return f"{surface(sku, version, market)}:g"


def sold(sku: str, market: str) -> str:
    """Units of a SKU sold in a market net of returns (string integer; the sale script's)."""
    return f"{sku_tag(sku)}:sold:{market}"


def sales(sku: str, market: str) -> str:
    """Units each sale of a SKU in a market may still have returned (hash ``event_id`` ->
    units net of returns against it; the sale script's)."""
    return f"{sku_tag(sku)}:sales:{market}"


def seen(sku: str, event_id: str) -> str:
    """Idempotency record of one event for one SKU (string, expires)."""
    return f"{sku_tag(sku)}:seen:{event_id}"


def events(sku: str) -> str:
    """Stream of the SKU's accepted events."""
    return f"{sku_tag(sku)}:events"


def served(sku: str, market: str) -> str:
    """Served-price look-ups of the SKU in a market (hash, see :mod:`service.served`)."""
    return f"{sku_tag(sku)}:served:{market}"


def sku_index() -> str:
    """Set of every SKU with a catalog entry (read by resync and stream consumers)."""
    return f"{PREFIX}:index:skus"


# The surface-version registry shares the ``{_refit}`` hash slot with the re-fit lock,
# so a fenced publish registers its version in one script that also checks the lock.
def versions() -> str:
    """Sorted set of published surface versions scored by publish time (ms)."""
    return f"{REFIT_TAG}:versions"


def version_record(version: str) -> str:
    """Record of one published version (hash)."""
    return f"{REFIT_TAG}:version:{version}"


def live_version() -> str:
    """The version most recently published or rolled back to (string)."""
    return f"{REFIT_TAG}:live"


def live_version_seq() -> str:
    """Sequence number of the publish or rollback that set :func:`live_version`."""
    return f"{REFIT_TAG}:live:seq"


def publish_seq() -> str:
    """Counter numbering every publish and rollback (``INCR``; only ever increases)."""
    return f"{REFIT_TAG}:publish:seq"


def live_seq(sku: str) -> str:
    """Sequence number of the publish or rollback that last moved ``dp:{sku}:live``."""
    return f"{sku_tag(sku)}:live:seq"


def quote_secret() -> str:
    """Shared random key signing quote ids when no secret is configured (string)."""
    return f"{PREFIX}:secret:quote"


def customer_secret() -> str:
    """Shared random key hashing customer references into pseudonyms (string)."""
    return f"{PREFIX}:secret:customer"


# -- operator config versions and audit log ------------------------------------------
# Global keys sharing the ``{ops}`` hash tag, so a config apply (new version, live
# pointer, audit entry) is one atomic script on a single node or a cluster. Read off
# the request path only (the service holds the live config in process).
OPS_TAG = f"{PREFIX}:{{ops}}"
CONFIG_CHANNEL = f"{PREFIX}:chan:config"
"""Pub/sub channel: the new live config version number after every apply/rollback."""


def config_live() -> str:
    """The live operator config version number (string integer)."""
    return f"{OPS_TAG}:config:live"


def config_seq() -> str:
    """Counter handing out config version numbers (``INCR``)."""
    return f"{OPS_TAG}:config:seq"


def config_version(version: int) -> str:
    """One operator config version (hash: ``bundle`` JSON, ``digest``, ``actor``, ``at``, ...)."""
    return f"{OPS_TAG}:config:v:{int(version)}"


def config_versions() -> str:
    """Sorted set of kept config versions (member and score: the version number)."""
    return f"{OPS_TAG}:config:versions"


def audit_log() -> str:
    """Append-only audit stream (config changes, publishes, rollbacks, approvals)."""
    return f"{OPS_TAG}:audit"


# -- dead letters -------------------------------------------------------------------
# Global keys sharing the ``{deadletter}`` hash tag, so the stream and its counter move
# together in one MULTI on a cluster too. Written off the request path (by the re-fit).
DEAD_LETTER_TAG = f"{PREFIX}:{{deadletter}}"


def dead_letters() -> str:
    """Stream of entries a reader could not decode, each with its reason."""
    return f"{DEAD_LETTER_TAG}:events"


def dead_letter_total() -> str:
    """How many entries were ever dead-lettered (string integer, ``INCRBY``)."""
    return f"{DEAD_LETTER_TAG}:total"


# -- re-fit worker state -----------------------------------------------------------------
# Global keys sharing the ``{_refit}`` hash tag (never a SKU: identifiers start with a
# letter or digit), so the fenced writes of a re-fit are single-slot scripts on a cluster
# (:mod:`service.store.refit_state`).
REFIT_TAG = f"{PREFIX}:{{_refit}}"


def refit_lock() -> str:
    """The re-fit lock: ``"<token> <owner>"`` with a TTL (string)."""
    return f"{REFIT_TAG}:lock"


def refit_fence() -> str:
    """Counter handing out the lock's fencing tokens (``INCR``; only ever increases)."""
    return f"{REFIT_TAG}:fence"


def refit_last() -> str:
    """ISO 8601 start of the last re-fit (string; the scheduler's cadence)."""
    return f"{REFIT_TAG}:last"


def refit_requests() -> str:
    """Re-fit ids queued by operators for the worker (list)."""
    return f"{REFIT_TAG}:requests"


def refit_record(refit_id: str) -> str:
    """One re-fit record (JSON string, expires after 30 days)."""
    return f"{REFIT_TAG}:record:{refit_id}"


def refit_records() -> str:
    """Sorted set of re-fit ids scored by creation time (the newest 500 kept)."""
    return f"{REFIT_TAG}:records"


def refit_history() -> str:
    """The retained event history the panel is built from (parquet bytes)."""
    return f"{REFIT_TAG}:history"


def refit_fit(fit_id: str) -> str:
    """One saved elasticity fit (bytes, :meth:`pricing.model.ElasticityFit.to_bytes`)."""
    return f"{REFIT_TAG}:fit:{fit_id}"


def refit_fits() -> str:
    """Sorted set of saved fit ids scored by save time (s)."""
    return f"{REFIT_TAG}:fits"


def approval(approval_id: str) -> str:
    """One approval of held surfaces (JSON string)."""
    return f"{REFIT_TAG}:approval:{approval_id}"


def approval_surfaces(approval_id: str) -> str:
    """The surfaces an approval holds (npz bytes)."""
    return f"{REFIT_TAG}:approval:{approval_id}:surfaces"


def approvals() -> str:
    """Sorted set of pending approval ids scored by creation time (s)."""
    return f"{REFIT_TAG}:approvals"
