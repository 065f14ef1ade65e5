"""Operator config versions in Redis: apply, read live, roll back, with audit.

The hook between ``dropprice config apply`` (or ``PUT /v1/drops/{id}``) and the
running service:

1. :meth:`ConfigStore.apply` validates the bundle, then one Lua script (all keys in
   the ``{ops}`` hash slot, so it is atomic on a cluster too) writes the version
   ``dp:{ops}:config:v:<n>`` (canonical JSON, digest, actor, time, base version),
   moves the pointer ``dp:{ops}:config:live`` to ``n``, appends a ``config.apply``
   record with the diff to the audit stream, and publishes ``n`` on the channel
   ``dp:chan:config``. With ``expect_version`` the script refuses when another
   apply got in first (:class:`~service.exceptions.ConfigConflict`).
2. The catalog the price path reads (``dp:{sku}:meta``) is refreshed and the
   inventory counters of new (SKU, market) pairs are seeded; live counters are
   never overwritten (sales already moved them).
3. Each service process holds a :class:`~service.config.live.LiveConfig` that
   reloads on the channel message (and polls the pointer as a fallback), so a new
   version is served without a restart.

Versions are numbered 1, 2, 3, ...; the last :data:`KEEP_CONFIG_VERSIONS` are kept.
Applying a bundle identical to the live one is a no-op (no version, no audit).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from service.audit import audit_fields
from service.config.checks import bundle_problems
from service.config.diff import ConfigChange, diff_bundles, summarize
from service.config.loader import ConfigIssue, bundle_to_json
from service.config.models import ConfigBundle
from service.config.yamlio import format_path
from service.exceptions import ConfigConflict, ConfigError
from service.store import PriceStore, SkuMeta
from service.store.configs import ConfigVersions, StoredVersion

__all__ = [
    "KEEP_CONFIG_VERSIONS",
    "AppliedConfig",
    "ConfigStore",
    "ConfigVersion",
    "live_config",
]

KEEP_CONFIG_VERSIONS = 50
MAX_AUDIT_CHANGES = 200


def _skus(bundle: ConfigBundle) -> set[str]:
    return {s.sku for d in bundle.drops for s in d.skus}


def digest_of(bundle: ConfigBundle) -> str:
    """SHA-256 of the canonical JSON (first 16 hex digits)."""
    return hashlib.sha256(bundle_to_json(bundle).encode()).hexdigest()[:16]


class ConfigVersion(NamedTuple):
    """One stored config version."""

    version: int
    bundle: ConfigBundle
    digest: str
    actor: str
    at: datetime
    base: int
    """The version that was live when this one was applied (0: none)."""
    summary: str
    kind: str


class AppliedConfig(NamedTuple):
    """Outcome of :meth:`ConfigStore.apply`."""

    version: int
    """The live version afterwards (unchanged when ``changed`` is false)."""
    changed: bool
    changes: tuple[ConfigChange, ...]
    audit_id: str | None


class ConfigStore:
    """Config versions, the live pointer and the catalog sync, over one Redis.

    Args:
        client: the :class:`~service.store.PriceStore` or its client (single node or
            cluster, ``service.store.connect``).
        keep: versions kept (older ones are deleted on apply).

    Attributes:
        versions: the config-version keys (:class:`~service.store.configs.ConfigVersions`).
        prices: the price store on the same Redis (catalogue, audit log, surfaces).
    """

    def __init__(self, client: Any, *, keep: int = KEEP_CONFIG_VERSIONS) -> None:
        if keep < 2:
            raise ValueError(f"keep must be at least 2, got {keep}")
        self.versions = ConfigVersions(client)
        self.prices = client if isinstance(client, PriceStore) else PriceStore(client)
        self.keep = keep

    # ---------------------------------------------------------------- reading
    def live_version(self) -> int | None:
        """The live version number, or ``None`` when no config was ever applied."""
        return self.versions.live_version()

    def get(self, version: int) -> ConfigVersion | None:
        """A kept version, or ``None`` when it never existed or was evicted."""
        h = self.versions.fields(version)
        if h is None:
            return None
        return ConfigVersion(
            version=version,
            bundle=ConfigBundle.model_validate_json(h["bundle"]),
            digest=h.get("digest", ""),
            actor=h.get("actor", ""),
            at=datetime.fromisoformat(h["at"]),
            base=int(h.get("base", "0")),
            summary=h.get("summary", ""),
            kind=h.get("kind", "config.apply"),
        )

    def notes(self) -> dict[int, str]:
        """The note given with each kept version (from its audit record), by version."""
        from service.audit import read_audit

        out: dict[int, str] = {}
        for record in read_audit(self.prices, kind="config", limit=10_000):
            version, note = record.detail.get("version"), record.detail.get("note")
            if isinstance(version, int) and note:
                out[version] = str(note)
        return out

    def live(self) -> ConfigVersion | None:
        """The live version with its bundle, or ``None``."""
        version = self.live_version()
        return self.get(version) if version is not None else None

    def list_versions(self) -> list[ConfigVersion]:
        """Kept versions, newest first (bundles included)."""
        out = [self.get(n) for n in self.versions.kept()]
        return [v for v in out if v is not None]

    # ---------------------------------------------------------------- writing
    def apply(
        self,
        bundle: ConfigBundle,
        *,
        actor: str,
        expect_version: int | None = None,
        kind: str = "config.apply",
        note: str | None = None,
        sync_catalog: bool = True,
        extra_detail: Mapping[str, Any] | None = None,
        served: ConfigBundle | None = None,
    ) -> AppliedConfig:
        """Make ``bundle`` the live config as a new version, with an audit record.

        Args:
            bundle: the whole new config (already loaded; cross-file rules are checked
                again here so nothing invalid goes live).
            actor: who applies it (recorded in the version and the audit log).
            expect_version: refuse unless this is still the live version (``0`` for
                "nothing live yet"); ``None`` applies over whatever is live.
            kind: audit kind (``config.apply``, ``config.rollback`` or ``config.seed``).
            note: free text kept in the audit detail.
            sync_catalog: refresh ``dp:{sku}:meta`` and seed new inventory counters.
            served: the bundle the service runs on while no version was applied yet
                (its startup files): the diff of the first version is taken against it.

        Returns:
            :class:`AppliedConfig`; ``changed`` is false (and nothing is written) when
            ``bundle`` equals the live config.

        Raises:
            ConfigError: the bundle breaks a cross-file rule.
            ConfigConflict: ``expect_version`` is no longer live.
        """
        problems = bundle_problems(bundle)
        if problems:
            issues = [ConfigIssue(p.part, None, format_path(p.path), p.message) for p in problems]
            raise ConfigError([str(i) for i in issues], issues=issues)
        current = self.live()
        live_num = current.version if current is not None else 0
        if expect_version is not None and expect_version != live_num:
            raise ConfigConflict(expected=expect_version, live=live_num)
        digest = digest_of(bundle)
        changes = diff_bundles(current.bundle if current is not None else served, bundle)
        if current is not None and current.digest == digest and kind == "config.apply":
            return AppliedConfig(live_num, False, (), None)
        n = self.versions.next_number()
        summary = summarize(changes)
        detail: dict[str, Any] = {
            "version": n,
            "base": live_num,
            "digest": digest,
            "summary": summary,
            "changes": [str(c) for c in changes[:MAX_AUDIT_CHANGES]],
        }
        if len(changes) > MAX_AUDIT_CHANGES:
            detail["changes_omitted"] = len(changes) - MAX_AUDIT_CHANGES
        if note:
            detail["note"] = note
        detail.update(extra_detail or {})
        fields = audit_fields(kind, actor, detail)
        written, audit_id = self.versions.write(
            n,
            StoredVersion(
                bundle=bundle_to_json(bundle),
                digest=digest,
                actor=fields["actor"],
                at=fields["at"],
                summary=summary,
                kind=kind,
                audit_detail=fields["detail"],
            ),
            expect_live=None if expect_version is None else live_num,
            evict=self.versions.evicted_by(n, self.keep),
        )
        if not written:
            raise ConfigConflict(expected=live_num, live=int(audit_id))
        if sync_catalog:
            before = current.bundle if current is not None else served
            gone = _skus(before) - _skus(bundle) if before is not None else set()
            self.sync_catalog(bundle, removed=gone, previous=current.bundle if current else None)
        return AppliedConfig(n, True, tuple(changes), audit_id)

    def rollback(self, *, actor: str, to_version: int | None = None) -> AppliedConfig:
        """Re-apply an earlier kept version as a new version (``config.rollback``).

        Args:
            to_version: the version to restore; default the live version's base.

        Raises:
            ConfigError: nothing to roll back to, or the version was evicted.
        """
        current = self.live()
        if current is None:
            raise ConfigError(["no config is live: nothing to roll back"])
        target_num = to_version if to_version is not None else current.base
        target = self.get(target_num) if target_num else None
        if target is None:
            kept = [v.version for v in self.list_versions()]
            raise ConfigError([f"config version {target_num} is not kept, allowed one of {kept}"])
        return self.apply(
            target.bundle,
            actor=actor,
            expect_version=current.version,
            kind="config.rollback",
            extra_detail={"restored": target_num},
        )

    def sync_catalog(
        self,
        bundle: ConfigBundle,
        *,
        removed: set[str] | None = None,
        previous: ConfigBundle | None = None,
    ) -> int:
        """Refresh catalog entries and seed counters that do not exist yet.

        Args:
            bundle: the config going live.
            removed: SKUs the previous version sold and this one does not: their
                catalog entries are withdrawn so no process serves them any longer
                (their counters, streams and surfaces stay for audit and re-fits).
            previous: the version this one replaces; entries it already registered
                unchanged are not written again (a one-field edit of a 1,000-SKU
                catalogue writes one entry). Every service process still re-registers
                the whole catalog when it reloads, which repairs any gap.

        Returns:
            The number of inventory counters newly seeded.
        """
        store = self.prices
        for code in sorted(removed or ()):
            store.unregister_sku(code)
        before = _catalog(previous) if previous is not None else {}
        entries = []
        for sku, (meta, inventory) in _catalog(bundle).items():
            old = before.get(sku)
            if old is not None and old[0] == meta:
                continue  # same entry and markets: registered and seeded already
            fresh = {m: n for m, n in inventory.items() if old is None or m not in old[1]}
            entries.append((SkuMeta(sku, *meta), fresh))
        seeded, _ = store.register_catalog(entries)
        return seeded


def _catalog(
    bundle: ConfigBundle,
) -> dict[str, tuple[tuple[float, str, tuple[str, ...], str, str], dict[str, int]]]:
    """SKU -> (catalog fields after ``sku``, inventory per market); a later drop wins."""
    out = {}
    for drop in bundle.drops:
        for sku in drop.skus:
            found = bundle.find_sku(sku.sku)
            if found is None or found[0].id != drop.id:
                continue
            meta = (
                sku.list_price,
                bundle.currency_for(sku),
                tuple(sku.inventory),
                drop.id,
                sku.name,
            )
            out[sku.sku] = (meta, dict(sku.inventory))
    return out


def live_config(
    client: Any, seed_dir: Path | str | None = None, *, actor: str = "bootstrap"
) -> ConfigVersion | None:
    """The live config version in Redis: what re-fits, workers and tools run on.

    The live version is the one source of the operator config (``PUT /v1/drops``,
    ``dropprice config apply`` and the console all write it). ``seed_dir`` only
    bootstraps an empty Redis: when no version was ever applied, its files are
    loaded and applied as version 1 through :meth:`ConfigStore.apply` (validated,
    audited as ``config.seed``, catalog registered), so every process then reads the
    same version. Once a version is live the files are not read at all.

    Args:
        client: redis-py client (single node or cluster).
        seed_dir: operator configs to seed an empty Redis with; ``None`` or a missing
            folder seeds nothing.
        actor: who seeds (recorded in the version and the audit log).

    Returns:
        The live :class:`ConfigVersion`, or ``None`` when Redis holds none and there
        was nothing to seed it with.

    Raises:
        ConfigError: Redis holds no version and the files under ``seed_dir`` are invalid.

    Example:
        >>> live = live_config(client, "configs")  # doctest: +SKIP
        >>> live.version, len(live.bundle.drops)  # doctest: +SKIP
        (1, 2)
    """
    store = ConfigStore(client)
    live = store.live()
    if live is not None or seed_dir is None or not Path(seed_dir).is_dir():
        return live
    from service.config.loader import load_config_dir

    bundle = load_config_dir(seed_dir)
    # Another process may seed (or apply) first: its version is then the live one.
    with contextlib.suppress(ConfigConflict):
        store.apply(
            bundle,
            actor=actor,
            expect_version=0,
            kind="config.seed",
            note=f"seeded an empty Redis from {seed_dir}",
        )
    return store.live()


def seed_startup_config(
    redis_url: str, config_dir: Path | str, *, cluster: bool = False, actor: str
) -> str:
    """Store ``dropprice serve``'s startup configs as the live version if none is live.

    So ``config diff``, ``config history`` and the re-fits see what the service serves
    from its first second. When a version is already live, it stays live (the files
    are not applied over it) and the returned line says whether the files differ.

    Returns:
        One line for the operator: which config version is live and where it came from.

    Raises:
        ConfigError: no version is live and the files are invalid.
    """
    from service.config.loader import load_config_dir
    from service.store import connect

    client = connect(redis_url, timeout=10.0, cluster=cluster)
    try:
        before = ConfigStore(client).live_version()
        live = live_config(client, config_dir, actor=actor)
    finally:
        client.close()
    if live is None:
        return f"no config version is live: {config_dir} holds no configs"
    if before is None:
        return f"config version {live.version} is live: the startup configs from {config_dir}"
    if digest_of(load_config_dir(config_dir)) == live.digest:
        return f"config version {live.version} is live (the same as {config_dir})"
    return (
        f"config version {live.version} from Redis is live, not {config_dir}: "
        f"`dropprice config diff {config_dir}` shows how they differ, `config apply` applies them"
    )
