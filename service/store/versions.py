"""Surface versions: publishing, rolling back and reading the price surfaces.

Publishing price surfaces
-------------------------
The re-fit worker publishes a new version with::

    store.publish_surfaces(
        "2026-12-05T17-00-v12",                       # version id (Identifier chars)
        {("CMX-VAR-001", "brooklyn-panel-page"): SurfaceRecord(
            price=price_nt,                           # float [N+1, T]: price with n units
                                                      #   left in period t (guardrails applied)
            period_start=window_start,                # aware datetime of period 0
            period_seconds=600,                       # length of one period
            guardrail_codes=codes_nt,                 # int8 [N+1, T] (pricing.guardrails codes)
            currency="USD",
            elasticity={"beta": -1.7, "beta_se": 0.2, "delta": -0.3, "gamma": 0.8},
            explain={"fit_version": "...", "objective": "revenue"},   # any JSON
        )},
        meta={"fit": {...}, "created_by": "worker-1"},  # JSON, kept in the version record
    )

0. The version is registered (``register_version.lua``, all keys in the
   ``{_refit}`` hash slot): it takes the next number from ``dp:{_refit}:publish:seq``
   and creates ``dp:{_refit}:version:<v>``, refused when the id is taken or, with
   ``fence=(lock_key, token)``, when the lock no longer holds that token
   (:class:`~service.exceptions.FenceLost`, nothing written). The registry shares
   the re-fit lock's slot precisely so that this check and the registration are one
   atomic step on a cluster too.
1. Every surface of the version is written under its own keys
   (``dp:{sku}:surface:<v>:<market>`` header, ``...:p`` float64 cells, ``...:g``
   int8 codes); nothing serves them yet.
2. For each SKU, one script switches ``dp:{sku}:live`` to the new version for all
   of the SKU's markets at once and announces it on ``dp:chan:updates``: a reader
   sees either the old or the new surface of a SKU, never half a publish. (Across
   SKUs the switch is SKU by SKU: a cluster has no cross-slot transactions.) The
   script carries the publish number and refuses when ``dp:{sku}:live:seq`` holds a
   higher one, so a publisher paused past a newer publish never moves a SKU back.
3. ``dp:{_refit}:live`` moves to the version under the same rule, the version joins
   ``dp:{_refit}:versions`` and versions beyond the ``keep`` most recent are
   evicted, except surfaces a market still serves. A publish overtaken in steps 2-3
   is recorded ``superseded`` and raises
   :class:`~service.exceptions.PublishSuperseded`.

:meth:`PriceStore.rollback` switches every surface of an older kept version back
the same way; :meth:`PriceStore.list_versions` and :meth:`PriceStore.live_version`
report the registry. A surface's cell for units left ``n > N`` is row ``N``;
periods before period 0 use column 0 and after the last use column ``T - 1``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from redis.commands.core import Script
from redis.crc import key_slot
from redis.exceptions import NoScriptError

from pricing.fields import is_identifier
from service import keys
from service.exceptions import FenceLost, PublishSuperseded
from service.store.cells import CellGrid, cell, epoch_ms
from service.store.client import _decode_hash, _text, unavailable_as_domain_error
from service.store.records import (
    PublishResult,
    SurfaceRecord,
    VersionInfo,
    _decode_surface,
    _encode_surface,
)

__all__ = ["SurfaceVersions"]


class SurfaceVersions:
    """Surface versions and live pointers (a part of :class:`~service.store.PriceStore`)."""

    client: Any
    cluster: bool
    keep_versions: int
    _swap_live: Script
    _evict: Script
    _register_version: Script
    _set_live_version: Script

    def publish_surfaces(
        self,
        version: str,
        surfaces: Mapping[tuple[str, str], SurfaceRecord],
        meta: Mapping[str, Any] | None = None,
        *,
        keep: int | None = None,
        fence: tuple[str, int | str] | None = None,
    ) -> PublishResult:
        """Write a new surface version, switch it live SKU by SKU, keep the last ``keep``.

        The version is first *registered*: one script numbers it from the publish
        counter and creates its record, refusing when the version id is taken or,
        with ``fence``, when the lock no longer holds the token. Only then are the
        surfaces written and switched; every switch carries that number and is refused
        for a SKU whose pointers a later publish or rollback already moved.

        Args:
            version: new version id (letters, digits, ``._:-``; unused so far).
            surfaces: ``{(sku, market): SurfaceRecord}``.
            meta: JSON-serialisable facts about the version (fit summary, author).
            keep: versions kept for rollback (default ``keep_versions``, at least 2).
            fence: ``(lock key, token)``: publish only while the lock key (in the
                ``{_refit}`` hash slot, e.g. ``keys.refit_lock()``) holds a value
                whose first word is ``token`` (``"<token> <owner>"``).

        Returns:
            The version, counts and the versions evicted.

        Raises:
            ValueError: a bad version id, a reused version, a fence lock outside the
                registry's hash slot or a malformed surface (the message names the
                SKU and market).
            FenceLost: the lock no longer holds the token; nothing was written.
            PublishSuperseded: a later publish or rollback moved the live pointers
                while this one ran; no pointer went back to this version.
            StoreUnavailable: Redis failed; the live version is unchanged for every
                SKU not yet switched (publish again under a new version id).
        """
        _check_version_id(version)
        if not surfaces:
            raise ValueError("publish_surfaces needs at least one (sku, market) surface, got none")
        keep = max(2, keep or self.keep_versions)
        encoded = {pair: _encode_surface(pair, rec, version) for pair, rec in surfaces.items()}
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        record = {
            "status": "writing",
            "created_ms": now_ms,
            "meta": json.dumps(dict(meta or {}), default=str),
            "pairs": json.dumps(sorted([s, m] for s, m in surfaces)),
        }
        with unavailable_as_domain_error(f"publishing surface version {version}"):
            seq = self._register("publish", version, fence, record)
            pipe = self.client.pipeline(transaction=False)
            for (sku, market), (header, cells, codes) in encoded.items():
                pipe.hset(keys.surface(sku, version, market), mapping=header)
                pipe.set(keys.surface_prices(sku, version, market), cells)
                if codes is not None:
                    pipe.set(keys.surface_guardrails(sku, version, market), codes)
            pipe.execute()
            by_sku = _group_by_sku(surfaces)
            superseded = self._swap(version, seq, by_sku)
            moved = self._set_live(version, seq, {"status": "live"})
            if not moved:
                self.client.hset(keys.version_record(version), mapping={"status": "superseded"})
            self.client.zadd(keys.versions(), {version: now_ms})
            evicted = self._evict_beyond(keep)
        if superseded or not moved:
            raise PublishSuperseded(
                f"surface version {version} (publish #{seq}) was overtaken by a later publish "
                f"or rollback: {len(superseded)} of {len(by_sku)} SKU(s) kept the newer "
                f"surfaces (e.g. {superseded[:3]}), live version is {self.live_version()!r}"
            )
        return PublishResult(version, len(by_sku), len(surfaces), evicted)

    def rollback(
        self, to_version: str | None = None, *, fence: tuple[str, int | str] | None = None
    ) -> PublishResult:
        """Serve an older kept version again (default: the one before the live one).

        A rollback is numbered like a publish, so it wins over every publish registered
        before it and loses to every one registered after it.

        Raises:
            ValueError: no such kept version, or nothing to roll back to.
            FenceLost: ``fence`` given and the lock no longer holds its token.
            PublishSuperseded: a later publish moved the pointers during the rollback.
            StoreUnavailable: Redis failed (roll back again; the switch is idempotent).
        """
        versions = self.list_versions()
        live = self.live_version()
        if to_version is None:
            older = [
                v
                for v in versions
                if v.version != live and v.status not in {"evicted", "superseded", "writing"}
            ]
            if live is not None:
                live_info = next((v for v in versions if v.version == live), None)
                if live_info is not None:
                    older = [v for v in older if v.published_at <= live_info.published_at]
            if not older:
                raise ValueError(
                    f"nothing to roll back to: kept versions are "
                    f"{[v.version for v in versions]}, live is {live!r}"
                )
            target = older[0]
        else:
            found = next((v for v in versions if v.version == to_version), None)
            if found is None:
                raise ValueError(
                    f"unknown or evicted surface version {to_version!r}; kept versions are "
                    f"{[v.version for v in versions]}"
                )
            target = found
        by_sku: dict[str, list[str]] = {}
        for sku, market in target.pairs:
            by_sku.setdefault(sku, []).append(market)
        with unavailable_as_domain_error(f"rolling back to {target.version}"):
            seq = self._register("rollback", target.version, fence, {})
            superseded = self._swap(target.version, seq, by_sku)
            moved = self._set_live(
                target.version,
                seq,
                {"status": "live", "rolled_back_ms": int(datetime.now(UTC).timestamp() * 1000)},
            )
        if superseded or not moved:
            raise PublishSuperseded(
                f"rollback to {target.version} (#{seq}) was overtaken by a later publish: "
                f"{len(superseded)} SKU(s) kept the newer surfaces, live version is "
                f"{self.live_version()!r}"
            )
        return PublishResult(target.version, len(by_sku), len(target.pairs), ())

    def _register(
        self,
        mode: Literal["publish", "rollback"],
        version: str,
        fence: tuple[str, int | str] | None,
        record: Mapping[str, Any],
    ) -> int:
        """Run ``register_version.lua``: the publish number, behind the fence if any."""
        script_keys = [keys.publish_seq(), keys.version_record(version)]
        token = ""
        if fence is not None:
            lock_key, fence_token = fence
            if key_slot(lock_key.encode()) != key_slot(keys.publish_seq().encode()):
                raise ValueError(
                    f"fence lock key must share the version registry's hash slot "
                    f"({keys.REFIT_TAG}:...), got {lock_key!r}"
                )
            script_keys.append(lock_key)
            token = str(fence_token).split(" ", 1)[0]
        args: list[Any] = [mode, token]
        for name, value in record.items():
            args += [name, value]
        reply = [_text(x) for x in self._register_version(keys=script_keys, args=args)]
        if reply[0] == "ok":
            return int(reply[1])
        if reply[0] == "fence":
            lock_key = script_keys[2]
            raise FenceLost(
                f"lock {lock_key} no longer holds token {token} (it holds "
                f"{reply[1] or 'nothing'!r}); surface version {version} was not published"
            )
        if reply[0] == "exists":
            raise ValueError(f"surface version {version!r} exists already: use a new id")
        raise ValueError(f"surface version {version!r} has no record to roll back to")

    def _run_scripts(self, calls: Sequence[tuple[Script, list[str], list[Any]]]) -> list[Any]:
        """Run scripts pipelined: one round trip per node, replies in call order.

        A cluster pipeline cannot carry EVALSHA, so on a cluster the calls are
        grouped by the node owning their first key (all keys of a call share one
        slot) and each group is pipelined on that node's own connection.
        """
        if not self.cluster:
            return _evalsha_pipelined(self.client, calls)
        groups: dict[str, tuple[Any, list[int]]] = {}
        for i, (_, script_keys, _) in enumerate(calls):
            node = self.client.get_node_from_key(script_keys[0])
            if node.name not in groups:
                groups[node.name] = (self.client.get_redis_connection(node), [])
            groups[node.name][1].append(i)
        replies: list[Any] = [None] * len(calls)
        for conn, index in groups.values():
            node_replies = _evalsha_pipelined(conn, [calls[i] for i in index])
            for i, reply in zip(index, node_replies, strict=True):
                replies[i] = reply
        return replies

    def _swap(self, version: str, seq: int, by_sku: Mapping[str, Sequence[str]]) -> list[str]:
        """Switch each SKU's markets to ``version``; returns the SKUs a later move kept."""
        calls: list[tuple[Script, list[str], list[Any]]] = []
        for sku, markets in by_sku.items():
            args: list[Any] = [keys.surface_prefix(sku), keys.UPDATES_CHANNEL, sku, seq]
            for market in markets:
                args += [market, version]
            calls.append((self._swap_live, [keys.live(sku), keys.live_seq(sku)], args))
        replies = self._run_scripts(calls)
        return [sku for sku, reply in zip(by_sku, replies, strict=True) if int(reply) < 0]

    def _set_live(self, version: str, seq: int, fields: Mapping[str, Any]) -> bool:
        """Point ``live_version`` at ``version`` unless a later publish already moved it."""
        args: list[Any] = [version, seq]
        for name, value in fields.items():
            args += [name, value]
        moved = self._set_live_version(
            keys=[keys.live_version(), keys.live_version_seq(), keys.version_record(version)],
            args=args,
        )
        return bool(moved)

    def _evict_beyond(self, keep: int) -> tuple[str, ...]:
        ordered = [_text(v) for v in self.client.zrevrange(keys.versions(), 0, -1)]
        live = self.client.get(keys.live_version())
        live_name = _text(live) if live is not None else None
        evicted = tuple(v for v in ordered[keep:] if v != live_name)
        for old in evicted:
            record = _decode_hash(self.client.hgetall(keys.version_record(old)))
            self._run_scripts(
                [
                    (
                        self._evict,
                        [
                            keys.live(sku),
                            keys.surface(sku, old, market),
                            keys.surface_prices(sku, old, market),
                            keys.surface_guardrails(sku, old, market),
                        ],
                        [market, old],
                    )
                    for sku, market in json.loads(record.get("pairs", "[]"))
                ]
            )
            self.client.zrem(keys.versions(), old)
            self.client.hset(keys.version_record(old), mapping={"status": "evicted"})
        return evicted

    def live_version(self) -> str | None:
        """The version most recently published or rolled back to, if any."""
        with unavailable_as_domain_error("reading the live version"):
            value = self.client.get(keys.live_version())
        return _text(value) if value is not None else None

    def publish_count(self) -> int:
        """Publishes and rollbacks ever numbered (``dp:{_refit}:publish:seq``; 0 before
        the first). It moves before any SKU's live pointers do, so a process that holds
        the count it last saw knows, with one read, whether any pointer may have moved."""
        with unavailable_as_domain_error("reading the publish counter"):
            value = self.client.get(keys.publish_seq())
        return int(value) if value is not None else 0

    def list_versions(self) -> list[VersionInfo]:
        """Kept versions, newest first."""
        with unavailable_as_domain_error("listing surface versions"):
            scored = self.client.zrevrange(keys.versions(), 0, -1, withscores=True)
            live = self.client.get(keys.live_version())
            pipe = self.client.pipeline(transaction=False)
            for name, _ in scored:
                pipe.hgetall(keys.version_record(_text(name)))
            records = pipe.execute()
        live_name = _text(live) if live is not None else None
        out = []
        for (name, score), raw in zip(scored, records, strict=True):
            h = _decode_hash(raw)
            is_live = _text(name) == live_name
            status = h.get("status", "unknown")
            if status == "live" and not is_live:
                status = "replaced"  # was live; a later publish or rollback took over
            out.append(
                VersionInfo(
                    version=_text(name),
                    published_at=datetime.fromtimestamp(score / 1000, UTC),
                    status=status,
                    live=is_live,
                    pairs=tuple((s, m) for s, m in json.loads(h.get("pairs", "[]"))),
                    meta=json.loads(h.get("meta", "{}")),
                )
            )
        return out

    def live_surfaces(self, sku: str) -> dict[str, tuple[str, SurfaceRecord]]:
        """``{market: (version, surface)}`` of every market of ``sku`` with a live surface."""
        with unavailable_as_domain_error(f"reading live surfaces of {sku}"):
            pointers = _decode_hash(self.client.hgetall(keys.live(sku)))
            if not pointers:
                return {}
            pipe = self.client.pipeline(transaction=False)
            for market, version in pointers.items():
                pipe.hgetall(keys.surface(sku, version, market))
                pipe.get(keys.surface_prices(sku, version, market))
                pipe.get(keys.surface_guardrails(sku, version, market))
            raw = pipe.execute()
        out = {}
        for i, (market, version) in enumerate(pointers.items()):
            header, cells, codes = raw[3 * i : 3 * i + 3]
            if header and cells is not None:
                out[market] = (version, _decode_surface(_decode_hash(header), cells, codes))
        return out

    def live_pointers(self, skus: Sequence[str]) -> dict[str, dict[str, str]]:
        """``{sku: {market: live version}}`` for ``skus`` in one pipelined pass."""
        with unavailable_as_domain_error("reading live surface pointers"):
            pipe = self.client.pipeline(transaction=False)
            for sku in skus:
                pipe.hgetall(keys.live(sku))
            rows = pipe.execute()
        return {sku: _decode_hash(raw) for sku, raw in zip(skus, rows, strict=True)}

    def get_surface(
        self, sku: str, market: str, version: str | None = None
    ) -> tuple[str, SurfaceRecord] | None:
        """One surface (default: the live one) with its version, or ``None``."""
        with unavailable_as_domain_error(f"reading the surface of {sku} in {market}"):
            if version is None:
                live = self.client.hget(keys.live(sku), market)
                if live is None:
                    return None
                version = _text(live)
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(keys.surface(sku, version, market))
            pipe.get(keys.surface_prices(sku, version, market))
            pipe.get(keys.surface_guardrails(sku, version, market))
            header, cells, codes = pipe.execute()
        if not header or cells is None:
            return None
        return version, _decode_surface(_decode_hash(header), cells, codes)

    def live_prices(
        self,
        pairs: Sequence[tuple[str, str]],
        units_left: Mapping[tuple[str, str], int],
        now: datetime,
    ) -> dict[tuple[str, str], float]:
        """The price each pair's live surface serves at ``now`` with its units left
        (:func:`service.store.cells.cell`; a pair not in ``units_left`` reads the last
        row), in two pipelined passes. Pairs without a live surface are left out."""
        with unavailable_as_domain_error("reading live prices"):
            pipe = self.client.pipeline(transaction=False)
            for sku, market in pairs:
                pipe.hget(keys.live(sku), market)
            versions = pipe.execute()
            have = [(p, _text(v)) for p, v in zip(pairs, versions, strict=True) if v is not None]
            pipe = self.client.pipeline(transaction=False)
            for (sku, market), v in have:
                pipe.hmget(
                    keys.surface(sku, v, market), "rows", "cols", "period_start_ms", "period_ms"
                )
                pipe.get(keys.surface_prices(sku, v, market))
            raw = pipe.execute()
        out: dict[tuple[str, str], float] = {}
        now_ms = epoch_ms(now)
        for idx, (pair, _) in enumerate(have):
            header, cells = raw[2 * idx], raw[2 * idx + 1]
            if header[0] is None or cells is None:
                continue
            grid = CellGrid(*(int(_text(x)) for x in header))
            n, t = cell(units_left.get(pair, grid.rows - 1), now_ms, grid)
            out[pair] = float(
                np.frombuffer(cells, dtype="<f8", count=1, offset=8 * (n * grid.cols + t))[0]
            )
        return out


def _check_version_id(version: str) -> None:

    if not is_identifier(version or "", max_length=128):
        raise ValueError(
            f"version id must be 1-128 letters, digits or '._:-' starting with a letter or "
            f"digit, got {version!r}"
        )


def _group_by_sku(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for sku, market in pairs:
        out.setdefault(sku, []).append(market)
    return out


def _evalsha_pipelined(
    client: Any, calls: Sequence[tuple[Script, list[str], list[Any]]]
) -> list[Any]:
    """``EVALSHA`` every call in one pipeline on one node: one round trip.

    redis-py's own script pipelining asks ``SCRIPT EXISTS`` first (a second round trip
    per batch). Here a script the server does not hold yet (a fresh or restarted
    Redis) answers ``NOSCRIPT`` without running; it is loaded and only those calls are
    sent again. Any other error reply is raised, as ``execute()`` would.
    """
    pipe = client.pipeline(transaction=False)
    for script, script_keys, args in calls:
        pipe.evalsha(script.sha, len(script_keys), *script_keys, *args)
    replies = list(pipe.execute(raise_on_error=False))
    missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if missing:
        for script in {calls[i][0].sha: calls[i][0] for i in missing}.values():
            client.script_load(script.script)
        again = client.pipeline(transaction=False)
        for i in missing:
            script, script_keys, args = calls[i]
            again.evalsha(script.sha, len(script_keys), *script_keys, *args)
        for i, reply in zip(missing, again.execute(raise_on_error=False), strict=True):
            replies[i] = reply
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
