"""What the re-fit keeps in Redis besides the surfaces: lock, records, history, fits, approvals.

Every key is in the ``{_refit}`` hash slot (:mod:`service.keys`), so each script below
is single-slot on a cluster.

- **Lock with a fencing token.** :meth:`RefitState.acquire` sets the lock to
  ``"<token> <owner>"`` with a TTL; the token comes from a counter that only increases.
- **Fenced writes.** Every write a re-fit makes while it holds the lock (its start
  time, the fit, the event history, approvals, pruning old fits) is one
  ``refit_fenced_write.lua`` call that writes only while the lock still holds *this*
  worker's value; a worker whose lock expired writes nothing and gets
  :class:`~service.exceptions.FenceLost`.
- **Records** (the story of each re-fit) and operator **requests** are written
  unfenced: a worker that could not take the lock still records why.

Example:
    >>> state = RefitState(store)  # doctest: +SKIP
    >>> token, lock_value = state.acquire("host:1", ttl_s=30)  # doctest: +SKIP
    >>> state.save_results(lock_value, fit_id="r1", fit_blob=b"...", history_blob=b"...",
    ...                    at=now)  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from service import keys
from service.exceptions import FenceLost
from service.store import scripts
from service.store.prices import PriceStore
from service.store.records import SurfaceRecord

__all__ = [
    "Approval",
    "RefitRecord",
    "RefitState",
    "StageTiming",
    "new_refit_id",
]

_RECORD_TTL_S = 30 * 24 * 3600
"""How long a re-fit record is kept."""
_RECORDS_KEPT = 500
"""Re-fit ids kept in the records index."""


@dataclass
class StageTiming:
    """One finished stage: its name, wall time and the facts it reported."""

    name: str
    seconds: float
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class RefitRecord:
    """The story of one re-fit, stored in Redis as JSON and served to operators.

    ``state`` moves ``queued`` -> ``running`` -> one of ``published`` (a version went
    live), ``held`` (every change waits for approval), ``no_change`` (nothing new to
    learn from), ``locked`` (another worker was running), ``failed``.
    """

    id: str
    state: str = "queued"
    trigger: str = "manual"
    requested_by: str = ""
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    device: str | None = None
    fence: int | None = None
    stages: list[StageTiming] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    version: str | None = None
    previous_version: str | None = None
    approval_id: str | None = None
    events_read: int = 0
    dead_lettered: int = 0
    """Entries read that could not be decoded: moved to the dead-letter stream and
    acknowledged, so they never block a re-fit (:meth:`PriceStore.dead_letter`)."""
    summary: dict[str, Any] = field(default_factory=dict)
    config_version: int | None = None
    """The live operator config version the re-fit ran on (``None``: a bundle given
    directly, e.g. the demo or a benchmark, not read from Redis)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (stages as a list of ``{name, seconds, detail}``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefitRecord:
        data = dict(data)
        data["stages"] = [StageTiming(**s) for s in data.get("stages", [])]
        return cls(**data)

    @property
    def timings(self) -> dict[str, float]:
        """Seconds per stage."""
        return {s.name: s.seconds for s in self.stages}

    @property
    def total_seconds(self) -> float:
        return float(sum(s.seconds for s in self.stages))


@dataclass
class Approval:
    """Surfaces a re-fit proposed that move a live price beyond the approval band.

    ``changes`` lists ``{sku, market, live_price, new_price, change_pct, band_pct}``;
    the surfaces themselves are stored beside the record.
    """

    id: str
    refit_id: str
    fit_id: str
    status: str = "pending"
    created_at: str = ""
    decided_at: str | None = None
    decided_by: str | None = None
    note: str = ""
    version: str | None = None
    changes: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


class RefitState:
    """Everything the re-fit keeps in Redis besides the surfaces (see module docstring).

    Args:
        store: the price store whose Redis this state lives in (or its client).
    """

    def __init__(self, store: PriceStore | Any) -> None:
        self._client = store.client if isinstance(store, PriceStore) else store
        self._acquire = scripts.register(self._client, "refit_acquire")
        self._extend = scripts.register(self._client, "refit_extend")
        self._release = scripts.register(self._client, "refit_release")
        self._fenced = scripts.register(self._client, "refit_fenced_write")

    # lock ------------------------------------------------------------------
    def acquire(self, owner: str, ttl_s: float) -> tuple[int, str] | None:
        """Take the lock: ``(token, lock value)``, or ``None`` when another holds it."""
        token = self._acquire(
            keys=[keys.refit_lock(), keys.refit_fence()], args=[int(ttl_s * 1000), owner]
        )
        if token is None:
            return None
        return int(token), f"{int(token)} {owner}"

    def extend(self, lock_value: str, ttl_s: float) -> bool:
        """Extend the lock if it still holds ``lock_value``."""
        return bool(self._extend(keys=[keys.refit_lock()], args=[lock_value, int(ttl_s * 1000)]))

    def release(self, lock_value: str) -> None:
        """Release the lock if it still holds ``lock_value``."""
        self._release(keys=[keys.refit_lock()], args=[lock_value])

    def holder(self) -> str | None:
        """The lock's value (``"<token> <owner>"``), ``None`` when free."""
        value = self._client.get(keys.refit_lock())
        return value.decode() if isinstance(value, bytes) else value

    def expire_lock(self) -> None:
        """Drop the lock whoever holds it, as its TTL running out would (for tests and an
        operator clearing a dead worker's lock)."""
        self._client.delete(keys.refit_lock())

    # fenced writes ---------------------------------------------------------
    def _write_fenced(self, lock_value: str, ops: Sequence[tuple[str, str, Any, Any]]) -> None:
        """Apply ``(op, key, a, b)`` writes (``SET``/``DEL``/``ZADD``/``ZREM``, see
        ``refit_fenced_write.lua``) in one script, only while the lock holds ``lock_value``.

        Raises:
            FenceLost: the lock expired and was taken over (nothing was written).
        """
        if not ops:
            return
        args: list[Any] = [lock_value]
        for op, _, a, b in ops:
            args.extend((op, a, b))
        ok = self._fenced(keys=[keys.refit_lock(), *[k for _, k, _, _ in ops]], args=args)
        if not ok:
            raise FenceLost(
                f"lock {keys.refit_lock()} no longer holds {lock_value!r} "
                f"(held by {self.holder()!r}); this worker's result is discarded"
            )

    def mark_started(self, lock_value: str, started_at: str) -> None:
        """Record when this re-fit started (the scheduler's cadence counts from it)."""
        self._write_fenced(lock_value, [("SET", keys.refit_last(), started_at, "")])

    def save_history(self, lock_value: str, history_blob: bytes) -> None:
        """Replace the retained event history."""
        self._write_fenced(lock_value, [("SET", keys.refit_history(), history_blob, "")])

    def save_results(
        self,
        lock_value: str,
        *,
        fit_id: str,
        fit_blob: bytes,
        history_blob: bytes,
        at: datetime,
        approval: Approval | None = None,
        approval_surfaces: Mapping[tuple[str, str], SurfaceRecord] | None = None,
    ) -> None:
        """Save a re-fit's fit, the event history and (when it held changes) its approval
        with the held surfaces, all in one fenced write."""
        score = at.timestamp()
        ops: list[tuple[str, str, Any, Any]] = [
            ("SET", keys.refit_fit(fit_id), fit_blob, ""),
            ("ZADD", keys.refit_fits(), score, fit_id),
            ("SET", keys.refit_history(), history_blob, ""),
        ]
        if approval is not None:
            ops += [
                ("SET", keys.approval(approval.id), json.dumps(approval.to_dict()), ""),
                ("SET", keys.approval_surfaces(approval.id),
                 _pack_surfaces(approval_surfaces or {}), ""),
                ("ZADD", keys.approvals(), score, approval.id),
            ]  # fmt: skip
        self._write_fenced(lock_value, ops)

    def save_approval(self, lock_value: str, approval: Approval) -> None:
        """Store a decided (or superseded) approval and take it off the pending list."""
        self._write_fenced(
            lock_value,
            [
                ("SET", keys.approval(approval.id), json.dumps(approval.to_dict()), ""),
                ("ZREM", keys.approvals(), approval.id, ""),
            ],
        )

    def prune_fits(self, lock_value: str, referenced: set[str], keep: int) -> list[str]:
        """Drop saved fits beyond the newest ``keep`` that no id in ``referenced`` names.

        Returns:
            The fit ids dropped.
        """
        ids = [_text(i) for i in self._client.zrevrange(keys.refit_fits(), 0, -1)]
        drop = [fit_id for fit_id in ids[keep:] if fit_id not in referenced]
        ops: list[tuple[str, str, Any, Any]] = []
        for fit_id in drop:
            ops += [
                ("DEL", keys.refit_fit(fit_id), "", ""),
                ("ZREM", keys.refit_fits(), fit_id, ""),
            ]
        self._write_fenced(lock_value, ops)
        return drop

    # records ---------------------------------------------------------------
    def save_record(self, record: RefitRecord) -> None:
        """Store a re-fit record (unfenced: a locked-out worker records why too)."""
        payload = json.dumps(record.to_dict(), default=str)
        created = datetime.fromisoformat(record.created_at) if record.created_at else _now()
        pipe = self._client.pipeline(transaction=False)
        pipe.set(keys.refit_record(record.id), payload, ex=_RECORD_TTL_S)
        pipe.zadd(keys.refit_records(), {record.id: created.timestamp()})
        pipe.zremrangebyrank(keys.refit_records(), 0, -(_RECORDS_KEPT + 1))
        pipe.execute()

    def get_record(self, record_id: str) -> RefitRecord | None:
        """The record ``record_id``, ``None`` when unknown or expired."""
        raw = self._client.get(keys.refit_record(record_id))
        return RefitRecord.from_dict(json.loads(raw)) if raw else None

    def list_records(self, limit: int = 20) -> list[RefitRecord]:
        """The newest ``limit`` records, newest first."""
        ids = [_text(i) for i in self._client.zrevrange(keys.refit_records(), 0, limit - 1)]
        out = [self.get_record(i) for i in ids]
        return [r for r in out if r is not None]

    def request(self, requested_by: str = "", *, force: bool = False) -> RefitRecord:
        """Queue a re-fit for the worker; returns its ``queued`` record."""
        record = RefitRecord(
            id=new_refit_id(),
            trigger="request" + (":force" if force else ""),
            requested_by=requested_by,
            created_at=_iso(_now()),
        )
        self.save_record(record)
        self._client.lpush(keys.refit_requests(), record.id)
        return record

    def pop_request(self) -> str | None:
        """The oldest queued request's id, taken off the queue; ``None`` when none."""
        value = self._client.rpop(keys.refit_requests())
        return _text(value) if value is not None else None

    def last_refit_at(self) -> datetime | None:
        """When the last re-fit started, ``None`` if never."""
        value = self._client.get(keys.refit_last())
        return datetime.fromisoformat(_text(value)) if value else None

    # history and fits ------------------------------------------------------
    def load_history(self) -> pd.DataFrame | None:
        """The retained event history, ``None`` before the first re-fit."""
        raw = self._client.get(keys.refit_history())
        if not raw:
            return None
        from service.extras import require

        require("pyarrow", "parquet", "the re-fit (it keeps its event history as Parquet)")
        return pd.read_parquet(io.BytesIO(raw))

    def load_fit_blob(self, fit_id: str) -> bytes | None:
        """The saved fit ``fit_id`` as bytes, ``None`` if gone."""
        raw = self._client.get(keys.refit_fit(fit_id))
        return bytes(raw) if raw else None

    def load_fit(self, fit_id: str) -> Any:
        """The saved :class:`pricing.model.ElasticityFit` ``fit_id``, or ``None`` if gone."""
        from pricing.model import ElasticityFit

        blob = self.load_fit_blob(fit_id)
        return None if blob is None else ElasticityFit.from_bytes(blob)

    # approvals -------------------------------------------------------------
    def get_approval(self, approval_id: str) -> Approval | None:
        """The approval ``approval_id``, ``None`` when unknown."""
        raw = self._client.get(keys.approval(approval_id))
        return Approval(**json.loads(raw)) if raw else None

    def approval_surfaces(self, approval_id: str) -> dict[tuple[str, str], SurfaceRecord]:
        """The surfaces the approval holds, by (SKU, market)."""
        raw = self._client.get(keys.approval_surfaces(approval_id))
        return _unpack_surfaces(raw) if raw else {}

    def pending_approvals(self) -> list[Approval]:
        """Approvals waiting for an operator, newest first."""
        ids = [_text(i) for i in self._client.zrevrange(keys.approvals(), 0, -1)]
        out = [self.get_approval(i) for i in ids]
        return [a for a in out if a is not None and a.status == "pending"]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def new_refit_id() -> str:
    """Sortable, unique re-fit id: ``r<UTC time>-<random>``."""
    return f"r{_now():%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def _pack_surfaces(surfaces: Mapping[tuple[str, str], SurfaceRecord]) -> bytes:
    arrays: dict[str, np.ndarray] = {}
    meta = []
    for i, ((sku, market), rec) in enumerate(surfaces.items()):
        arrays[f"p{i}"] = np.asarray(rec.price, dtype=np.float64)
        if rec.guardrail_codes is not None:
            arrays[f"g{i}"] = np.asarray(rec.guardrail_codes, dtype=np.int8)
        meta.append(
            {
                "sku": sku,
                "market": market,
                "period_start": rec.period_start.isoformat(),
                "period_seconds": rec.period_seconds,
                "currency": rec.currency,
                "elasticity": dict(rec.elasticity or {}),
                "explain": dict(rec.explain or {}),
            }
        )
    arrays["meta"] = np.frombuffer(json.dumps(meta, default=str).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _unpack_surfaces(raw: bytes) -> dict[tuple[str, str], SurfaceRecord]:
    with np.load(io.BytesIO(raw)) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        out = {}
        for i, m in enumerate(meta):
            out[(m["sku"], m["market"])] = SurfaceRecord(
                price=np.array(data[f"p{i}"]),
                period_start=datetime.fromisoformat(m["period_start"]),
                period_seconds=int(m["period_seconds"]),
                guardrail_codes=np.array(data[f"g{i}"]) if f"g{i}" in data else None,
                currency=m["currency"],
                elasticity=m["elasticity"],
                explain=m["explain"],
            )
    return out
