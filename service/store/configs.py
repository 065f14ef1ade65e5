"""Operator config versions in Redis: the stored versions, the live pointer, the channel.

What a version means (a validated bundle, its diff, its audit detail) is
:mod:`service.config.versions`; this module only reads and writes the keys:

- ``dp:{ops}:config:live`` (:func:`service.keys.config_live`): the live version number
  (absent or ``0``: none applied yet);
- ``dp:{ops}:config:v:<n>`` (:func:`service.keys.config_version`): one version's hash
  (``bundle``, ``digest``, ``actor``, ``at``, ``base``, ``summary``, ``kind``);
- ``dp:{ops}:config:versions`` (:func:`service.keys.config_versions`): the kept version
  numbers, scored by number; ``dp:{ops}:config:seq`` hands out the next one;
- ``dp:chan:config`` (:data:`service.keys.CONFIG_CHANNEL`): every apply publishes the new
  number there.

One script (``service/lua/config_apply.lua``, every key in the ``{ops}`` slot) writes a
version, moves the pointer, appends the audit record, evicts old versions and publishes,
so an apply is atomic on a cluster too.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from service import keys
from service.store import scripts
from service.store.client import _text, subscribe
from service.store.prices import client_of

__all__ = ["ConfigVersions", "StoredVersion"]


class StoredVersion(NamedTuple):
    """The fields a config version is written with (all text, as stored)."""

    bundle: str
    """The bundle's canonical JSON."""
    digest: str
    actor: str
    at: str
    summary: str
    kind: str
    audit_detail: str
    """The audit record's ``detail`` field (JSON)."""


class ConfigVersions:
    """The config-version keys of one Redis (single node or cluster).

    Args:
        target: the :class:`~service.store.PriceStore` or its redis-py client.
    """

    def __init__(self, target: Any) -> None:
        self.client = client_of(target)
        self._apply = scripts.register(self.client, "config_apply")

    def live_version(self) -> int | None:
        """The live version number, or ``None`` when no config was ever applied."""
        raw = self.client.get(keys.config_live())
        return int(_text(raw)) if raw is not None and _text(raw) != "0" else None

    def fields(self, version: int) -> dict[str, str] | None:
        """The stored hash of ``version``, or ``None`` when it never existed or was evicted."""
        raw = self.client.hgetall(keys.config_version(version))
        return {_text(k): _text(v) for k, v in raw.items()} if raw else None

    def kept(self) -> list[int]:
        """The kept version numbers, newest first."""
        return [int(_text(v)) for v in self.client.zrevrange(keys.config_versions(), 0, -1)]

    def next_number(self) -> int:
        """A fresh version number (never handed out twice)."""
        return int(self.client.incr(keys.config_seq()))

    def evicted_by(self, version: int, keep: int) -> list[int]:
        """The kept versions that writing ``version`` pushes out of the last ``keep``."""
        return [
            int(_text(v))
            for v in self.client.zrange(keys.config_versions(), 0, -keep)
            if int(_text(v)) != version
        ]

    def write(
        self,
        version: int,
        stored: StoredVersion,
        *,
        expect_live: int | None,
        evict: list[int],
    ) -> tuple[bool, str]:
        """Store ``version``, make it live, append its audit record, delete ``evict`` and
        publish the number on :data:`~service.keys.CONFIG_CHANNEL`, in one script.

        Args:
            expect_live: refuse unless this version (``0``: none) is still live;
                ``None`` writes over whatever is live.

        Returns:
            ``(True, audit record id)``, or ``(False, live version)`` when refused
            (nothing written).
        """
        result = self._apply(
            keys=[
                keys.config_live(),
                keys.config_versions(),
                keys.config_version(version),
                keys.audit_log(),
                *[keys.config_version(v) for v in evict],
            ],
            args=[
                "" if expect_live is None else str(expect_live),
                version,
                stored.bundle,
                stored.digest,
                stored.actor,
                stored.at,
                stored.summary,
                stored.kind,
                stored.audit_detail,
                keys.CONFIG_CHANNEL,
                *evict,
            ],
        )
        return int(result[0]) >= 0, _text(result[1])

    def subscribe(self) -> Any:
        """A pub/sub connection subscribed to :data:`~service.keys.CONFIG_CHANNEL`.

        Raises:
            redis.RedisError, OSError: Redis is unreachable.
        """
        return subscribe(self.client, keys.CONFIG_CHANNEL)
