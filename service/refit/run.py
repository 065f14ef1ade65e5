"""One re-fit: events in Redis -> a new, validated price-surface version live.

A re-fit runs as six timed stages; each one's duration and facts go to the re-fit
record (``GET /v1/admin/refits/{id}``), the progress display and the metrics:

======== =====================================================================
stage    what it does
======== =====================================================================
panel    take the lock; read the events not yet acknowledged (consumer group
         ``refit``: entries left pending by a crashed worker first, then new
         ones); merge them into the retained event history, de-duplicated by
         ``event_id``; build the hourly panel (:mod:`service.panel`)
intensity the 24-72 h micro-event index (:func:`pricing.intensity.build_intensity_index`)
         joined onto the panel
fit      :func:`pricing.model.fit_elasticity` on every (SKU, market) at once,
         warm-started from the live version's fit, with the category priors of
         ``categories.yaml``; then the parameter checks (below) and the
         held-out check (below)
solve    per drop: the SKU's ladder (guardrail ladder, else a grid between floor
         and ceiling), units left now, the periods left in the current or next
         window, demand rates from the fit and the intensity forecast;
         :func:`pricing.policy.solve_surfaces` then
         :func:`pricing.guardrails.apply_guardrails`
validate every published cell finite, positive, inside floor/ceiling/cost; the
         price change against the live price beyond the approval band is held
         for an operator
publish  the fit and the event history are saved (only while this worker still
         holds the lock), the lock is re-checked and extended, then
         :meth:`service.store.PriceStore.publish_surfaces` switches the version
         live; only then are the events acknowledged
======== =====================================================================

Intensity enters the fit as the index's exogenous part ``E`` (announcements, claims,
listings), centred per (SKU, market), ``E − Ē``. The sales and velocity-spike parts
count the very sales the model explains: used as a regressor they absorb the price
effect and pull elasticities toward zero, so they feed the analysts' index, not the
fit. Centred, ``β`` is the elasticity at the pair's usual intensity (what the checks
below judge). The surfaces use ``E`` decayed from its value now with its half-life,
centred by the same ``Ē``; the path is stored with the surface
(``explain.intensity_forecast``) so a preview re-solves exactly what was published.

Parameter checks (end of the ``fit`` stage, so the solver only sees sane demand):
a row whose elasticity is not finite or lies outside its category's
``allowed_range`` keeps its previous fit's elasticity (when that one is finite and
in range) or falls back to the category prior mean. The replacement keeps the
fitted demand level at the SKU's reference price ``p_ref`` (geometric mean of its
observed prices) and changes only the slope:

.. math:: \\lambda'(p) = \\lambda(p)\\,(p / p_{ref})^{\\beta' - \\beta}

A row whose demand is still not finite is left out (it keeps its live surface).

Held-out check (end of the ``fit`` stage): the panel's most recent
:data:`VALIDATION_FRACTION` of hours is held out; the model is refitted on the earlier
hours (warm-started from the new fit, so a few Newton steps) and predicts each held-out
hour at its observed price, hour of day and intensity; the naive predictive is each
(SKU, market)'s mean units per hour over the earlier hours. Both are scored by mean
Poisson deviance over the held-out hours that did not end sold out
(:func:`pricing.validation.holdout_score`). When the model's deviance exceeds the naive
one by more than the margin (``validation_margin``, 10 % by default), nothing is
published: every SKU keeps its live surface, the re-fit ends ``no_change`` with the
reason, and both deviances are in the fit stage's detail and the record's ``summary``
(``validation``; a published version carries them in its ``fit`` meta). A panel with
fewer than :data:`VALIDATION_MIN_CELLS` scorable held-out hours is not judged (said in
the same place). The check is deterministic: same panel, same scores.

Crash safety and fencing
------------------------
- **Lock with a fencing token.** ``dp:{_refit}:lock`` holds ``"<token> <owner>"``
  with a TTL; the token comes from a counter that only increases. Every write of
  the re-fit (fit, history, approvals) is a Lua script that succeeds only while the
  lock still holds *this* token, and the lock is re-checked and extended right
  before the surfaces are switched live. The publish itself is fenced: the store
  registers the new version (numbered from an increasing publish counter) in one
  script that also checks the lock still holds this token (the registry shares the
  lock's ``{_refit}`` hash slot), and the per-SKU switches run only after that and
  refuse to move a SKU back to a lower number than its live one. A worker whose lock
  expired (a long pause) therefore never publishes: it fails with
  :class:`~service.exceptions.FenceLost`, and one paused after registering cannot go
  back over a newer version (:class:`~service.exceptions.PublishSuperseded`).
- **Acknowledge after publish.** Events are acknowledged only after the version is
  live. A worker killed before that leaves them pending; the next re-fit reads the
  pending entries first (same consumer name) and merges them into the history,
  where ``event_id`` de-duplication makes a re-read count once.
- **Nothing new, nothing published.** A re-fit that reads no event (and is not
  forced) ends ``no_change``: two workers started together publish one version.

Keys (all in the ``{_refit}`` hash slot, so the scripts are single-slot on a
cluster; ``_refit`` can never be a SKU since identifiers start with a letter or
digit): ``lock``, ``fence``, ``record:<id>``, ``records`` (zset), ``requests``
(list), ``last`` (start of the last re-fit), ``history`` (parquet of retained
events), ``fit:<refit id>`` (saved :class:`~pricing.model.ElasticityFit`), ``fits``
(zset), ``approval:<id>``, ``approvals`` (zset of pending ones).

Example:
    >>> live = live_config(store.client, seed_dir="configs")  # doctest: +SKIP
    >>> refitter = Refitter(store, live.bundle, config_version=live.version)  # doctest: +SKIP
    >>> record = refitter.run()  # doctest: +SKIP
    >>> record.state, record.version  # doctest: +SKIP
    ('published', 'v20261205T170000Z-f12')
"""

from __future__ import annotations

import functools
import io
import json
import logging
import math
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
from prometheus_client import Counter, Histogram

from pricing.events import EVENT_KINDS, INDEX_KINDS, STIMULUS_KINDS
from service import keys
from service.codec import split_poisoned
from service.config.models import ConfigBundle, DropConfig, DropWindow, Guardrails, SkuConfig
from service.exceptions import ApprovalNotFound, FenceLost, RefitError, RefitLocked
from service.panel import attach_intensity, build_panel, dedupe_events
from service.store import PriceStore, StreamEvent, SurfaceRecord

__all__ = [
    "REFIT_GROUP",
    "STAGES",
    "Approval",
    "Refitter",
    "RefitRecord",
    "RefitState",
    "Reporter",
    "StageTiming",
    "drop_horizon",
    "events_frame",
    "guardrail_spec",
    "select_devices",
]

log = logging.getLogger("dropprice.refit")

REFIT_GROUP = "refit"
"""Consumer group of the re-fit worker on every SKU event stream."""
CONSUMER = "refit-worker"
"""One consumer name for every worker: only the lock holder reads, and a successor
re-reads the entries a crashed predecessor left pending under the same name."""
STAGES = ("panel", "intensity", "fit", "solve", "validate", "publish")
"""Stages of a re-fit, in order."""
LADDER_SIZE = 16
"""Grid prices per SKU when its guardrails give no ladder."""
VALIDATION_FRACTION = 0.15
"""Share of the panel's most recent hours held out by the re-fit's held-out check."""
VALIDATION_MIN_CELLS = 50
"""Fewest scorable held-out (SKU, market, hour) cells for the held-out check to judge."""

REFIT_SECONDS = Histogram(
    "dropprice_refit_duration_seconds",
    "Wall time of one re-fit, events in Redis to new version live, by outcome.",
    ["outcome"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)
REFIT_STAGE_SECONDS = Histogram(
    "dropprice_refit_stage_seconds",
    "Wall time of one re-fit stage.",
    ["stage"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
REFITS = Counter(
    "dropprice_refits",
    "Re-fits by outcome (published, held, no_change, locked, failed).",
    ["outcome"],
)
REFIT_VALIDATIONS = Counter(
    "dropprice_refit_validations",
    "Held-out checks of re-fits by outcome (passed, rejected, skipped).",
    ["outcome"],
)
REFIT_HOLDOUT_DEVIANCE = Histogram(
    "dropprice_refit_holdout_deviance",
    "Mean Poisson deviance per held-out hour of a re-fit's check, model and naive mean.",
    ["predictor"],
    buckets=(0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 100),
)
REFIT_DEAD_LETTERED = Counter(
    "dropprice_refit_dead_lettered",
    "Stream entries a re-fit could not decode and moved to the dead-letter stream.",
)

# --------------------------------------------------------------------- Lua scripts
_ACQUIRE = """
-- KEYS[1] lock, KEYS[2] fence counter; ARGV[1] ttl ms, ARGV[2] owner
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], token .. ' ' .. ARGV[2], 'PX', ARGV[1])
return token
"""
_EXTEND = """
-- KEYS[1] lock; ARGV[1] expected value, ARGV[2] ttl ms
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_SET_IF_OWNER = """
-- KEYS[1] lock, KEYS[2..] targets; ARGV[1] lock value, ARGV[2..] values ('' deletes)
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
for i = 2, #KEYS do
  if ARGV[i] == '' then redis.call('DEL', KEYS[i]) else redis.call('SET', KEYS[i], ARGV[i]) end
end
return 1
"""


# ----------------------------------------------------------------------- records
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


# ------------------------------------------------------------------ Redis state
class RefitState:
    """Everything the re-fit keeps in Redis besides the surfaces (see module docstring).

    Args:
        client: redis-py client (single node or cluster); usually ``store.client``.
    """

    def __init__(self, client: Any) -> None:
        self.client = client
        self._acquire = client.register_script(_ACQUIRE)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)
        self._set_if_owner = client.register_script(_SET_IF_OWNER)

    # keys
    @staticmethod
    def key(*parts: str) -> str:
        return keys.refit(*parts)

    # lock ------------------------------------------------------------------
    def acquire(self, owner: str, ttl_s: float) -> tuple[int, str] | None:
        """Take the lock: ``(token, lock value)``, or ``None`` when another holds it."""
        token = self._acquire(
            keys=[self.key("lock"), self.key("fence")], args=[int(ttl_s * 1000), owner]
        )
        if token is None:
            return None
        return int(token), f"{int(token)} {owner}"

    def extend(self, lock_value: str, ttl_s: float) -> bool:
        """Extend the lock if it still holds ``lock_value``."""
        return bool(self._extend(keys=[self.key("lock")], args=[lock_value, int(ttl_s * 1000)]))

    def release(self, lock_value: str) -> None:
        self._release(keys=[self.key("lock")], args=[lock_value])

    def holder(self) -> str | None:
        value = self.client.get(self.key("lock"))
        return value.decode() if isinstance(value, bytes) else value

    def set_if_owner(self, lock_value: str, values: Mapping[str, bytes | str]) -> None:
        """Write ``values`` (key -> payload) only while the lock holds ``lock_value``.

        Raises:
            FenceLost: the lock expired and was taken over (nothing was written).
        """
        names = list(values)
        ok = self._set_if_owner(
            keys=[self.key("lock"), *names], args=[lock_value, *[values[k] for k in names]]
        )
        if not ok:
            raise FenceLost(
                f"lock {self.key('lock')} no longer holds {lock_value!r} "
                f"(held by {self.holder()!r}); this worker's result is discarded"
            )

    # records ---------------------------------------------------------------
    def save_record(self, record: RefitRecord) -> None:
        payload = json.dumps(record.to_dict(), default=str)
        created = datetime.fromisoformat(record.created_at) if record.created_at else _now()
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key("record", record.id), payload, ex=30 * 24 * 3600)
        pipe.zadd(self.key("records"), {record.id: created.timestamp()})
        pipe.zremrangebyrank(self.key("records"), 0, -501)
        pipe.execute()

    def get_record(self, record_id: str) -> RefitRecord | None:
        raw = self.client.get(self.key("record", record_id))
        return RefitRecord.from_dict(json.loads(raw)) if raw else None

    def list_records(self, limit: int = 20) -> list[RefitRecord]:
        ids = [_text(i) for i in self.client.zrevrange(self.key("records"), 0, limit - 1)]
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
        self.client.lpush(self.key("requests"), record.id)
        return record

    def pop_request(self) -> str | None:
        value = self.client.rpop(self.key("requests"))
        return _text(value) if value is not None else None

    def last_refit_at(self) -> datetime | None:
        value = self.client.get(self.key("last"))
        return datetime.fromisoformat(_text(value)) if value else None

    # history and fits ------------------------------------------------------
    def load_history(self) -> pd.DataFrame | None:
        raw = self.client.get(self.key("history"))
        if not raw:
            return None
        return pd.read_parquet(io.BytesIO(raw))

    def load_fit_blob(self, fit_id: str) -> bytes | None:
        raw = self.client.get(self.key("fit", fit_id))
        return bytes(raw) if raw else None

    def load_fit(self, fit_id: str) -> Any:
        """The saved :class:`pricing.model.ElasticityFit` ``fit_id``, or ``None`` if gone."""
        blob = self.load_fit_blob(fit_id)
        return None if blob is None else _fit_from_bytes(blob)

    # approvals -------------------------------------------------------------
    def get_approval(self, approval_id: str) -> Approval | None:
        raw = self.client.get(self.key("approval", approval_id))
        return Approval(**json.loads(raw)) if raw else None

    def approval_surfaces(self, approval_id: str) -> dict[tuple[str, str], SurfaceRecord]:
        raw = self.client.get(self.key("approval", approval_id, "surfaces"))
        return _unpack_surfaces(raw) if raw else {}

    def pending_approvals(self) -> list[Approval]:
        ids = [_text(i) for i in self.client.zrevrange(self.key("approvals"), 0, -1)]
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


# ------------------------------------------------------------------ progress
class Reporter(Protocol):
    """Receives progress: the CLI shows it with rich or as JSON lines."""

    def stage_started(self, name: str) -> None: ...

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None: ...

    def note(self, message: str, **fields: Any) -> None: ...


class LogReporter:
    """Progress as structured log records on the ``dropprice.refit`` logger."""

    def stage_started(self, name: str) -> None:
        log.debug("stage started", extra={"stage": name})

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        log.info("stage finished", extra={"stage": name, "seconds": round(seconds, 4), **detail})

    def note(self, message: str, **fields: Any) -> None:
        log.info(message, extra=fields)


# ------------------------------------------------------------------ devices
def select_devices(kind: str = "auto") -> list[Any]:
    """JAX devices a re-fit runs on: all devices of the chosen platform.

    Args:
        kind: ``auto`` (JAX's default platform), ``cpu`` or ``gpu``.

    Raises:
        RefitError: ``gpu`` asked for but JAX sees none, or an unknown kind.
    """
    import jax

    if kind == "auto":
        return list(jax.devices())
    if kind not in ("cpu", "gpu"):
        raise RefitError(f"--device must be one of cpu, gpu, auto, got {kind!r}")
    try:
        devices = list(jax.devices(kind))
    except RuntimeError as exc:
        raise RefitError(
            f"--device {kind}: JAX sees no {kind} device ({exc}); available: "
            f"{[str(d) for d in jax.devices()]}. Install jax[cuda12] or use --device cpu"
        ) from exc
    return devices


def describe_devices(devices: Sequence[Any]) -> str:
    """``"cpu:0"`` or ``"gpu:0-3 (4 devices, SKU-sharded)"``."""
    platform = devices[0].platform
    if len(devices) == 1:
        return f"{platform}:{devices[0].id}"
    return f"{platform}:{devices[0].id}-{devices[-1].id} ({len(devices)} devices, SKU-sharded)"


# ------------------------------------------------------------------ events
_NUMERIC = ("quantity", "unit_price", "charged_price", "reach", "count", "weight", "units_left")
_HISTORY_COLUMNS = (
    "event_id",
    "ts",
    "type",
    "sku",
    "market",
    "quantity",
    "unit_price",
    "reach",
    "count",
    "weight",
)


_FIELDS = ("type", "event_id", "market", "ts", *_NUMERIC)


def _field_column(entries: Sequence[StreamEvent], name: str) -> np.ndarray:
    """One field of every entry as ``str`` (``None`` where absent or empty), decoded in
    one pass (pyarrow) rather than entry by entry."""
    import pyarrow as pa

    first = next(iter(entries[0].fields), "")
    raw = isinstance(first, bytes)
    key: Any = name.encode() if raw else name
    values = [e.fields.get(key) for e in entries]
    arr = pa.array(values, type=pa.binary() if raw else pa.string())
    if raw:
        arr = arr.cast(pa.string())
    out = np.asarray(arr.to_pandas(), dtype=object)
    out[out == ""] = None
    return out


def events_frame(entries: Sequence[StreamEvent]) -> pd.DataFrame:
    """Events table from stream entries with typed columns.

    ``unit_price`` is the price the POS reported it charged; when it reported none,
    the price the store charged (``charged_price``: the quote, surface or list price).
    ``ts`` is the event's own time, else the time Redis appended the entry.
    """
    if not entries:
        return _empty_history()
    df = pd.DataFrame({name: _field_column(entries, name) for name in _FIELDS})
    # The stream says which SKU (an announcement naming several is one entry in each).
    df["sku"] = [e.sku for e in entries]
    for col in _NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce")
    reported = df["unit_price"]
    df["unit_price"] = df["charged_price"].where(~(reported > 0), reported)
    # The event's own zoned time; else the time Redis appended it (the entry id's ms).
    appended = pd.to_datetime(
        [int(e.entry_id.split("-", 1)[0]) for e in entries], unit="ms", utc=True
    )
    ts = pd.to_datetime(df["ts"], utc=True, format="ISO8601")
    df["ts"] = ts.where(ts.notna(), pd.Series(appended, index=df.index))
    out = df[list(_HISTORY_COLUMNS)].copy()
    for col in ("event_id", "type", "sku", "market"):
        out[col] = out[col].astype(str)
    return out


def _empty_history() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_id": pd.Series(dtype=str),
            "ts": pd.Series(dtype="datetime64[ns, UTC]"),
            "type": pd.Series(dtype=str),
            "sku": pd.Series(dtype=str),
            "market": pd.Series(dtype=str),
            **{
                c: pd.Series(dtype=float)
                for c in ("quantity", "unit_price", "reach", "count", "weight")
            },
        }
    )


def _history_bytes(history: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    history.reset_index(drop=True).to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


# ------------------------------------------------------------------ drops
@dataclass(frozen=True)
class Horizon:
    """The periods a surface covers: ``periods`` of ``period`` from ``start``."""

    start: datetime
    periods: int
    period: timedelta
    window: DropWindow
    last_window: bool


def drop_horizon(drop: DropConfig, now: datetime) -> Horizon | None:
    """The window a surface computed at ``now`` prices: the open one (from the current
    period to its end) or else the next one (whole); ``None`` when all have closed.

    Periods are aligned on the window start (``period_minutes`` each); a last
    partial period counts as a period.
    """
    period = timedelta(minutes=drop.period_minutes)
    for i, w in enumerate(drop.windows):
        if now >= w.end:
            continue
        start = w.start
        if now > w.start:
            start = w.start + period * math.floor((now - w.start) / period)
        periods = max(1, math.ceil((w.end - start) / period))
        return Horizon(start, periods, period, w, i == len(drop.windows) - 1)
    return None


def guardrail_spec(rails: Guardrails, sku: SkuConfig, drop: DropConfig, horizon: Horizon) -> Any:
    """:class:`pricing.guardrails.GuardrailSpec` for one SKU over one horizon.

    The no-touch minutes count from the window's opening, so a surface that starts
    later in an open window holds only the no-touch periods it still covers.
    """
    from pricing.guardrails import GuardrailSpec

    no_touch_end = horizon.window.start + timedelta(minutes=rails.no_touch_minutes)
    no_touch = max(0, math.ceil((no_touch_end - horizon.start) / horizon.period))
    return GuardrailSpec(
        floor=rails.floor,
        ceiling=rails.ceiling,
        ladder=tuple(rails.ladder) if rails.ladder is not None else None,
        price_ending=rails.price_ending,
        max_change_pct=rails.max_change_pct,
        max_changes_per_window=rails.max_changes_per_window,
        no_touch_periods=min(no_touch, horizon.periods),
        allow_below_cost=rails.allow_below_cost,
        unit_cost=sku.unit_cost,
    )


def sku_ladder(spec: Any, rails: Guardrails, sku: SkuConfig, size: int = LADDER_SIZE) -> np.ndarray:
    """The prices the DP chooses from: the guardrail ladder, else a geometric grid
    between floor and ceiling (0.5x and 2x the list price where unset)."""
    from pricing.guardrails import candidate_ladder

    lo = rails.floor if rails.floor is not None else 0.5 * sku.list_price
    hi = rails.ceiling if rails.ceiling is not None else 2.0 * sku.list_price
    spread = (lo / sku.list_price, max(hi, lo) / sku.list_price)
    return np.asarray(candidate_ladder(spec, sku.list_price, size=size, spread=spread))


def grid_ladders(
    specs: Sequence[Any],
    rails: Sequence[Guardrails],
    skus: Sequence[SkuConfig],
    size: int = LADDER_SIZE,
) -> np.ndarray:
    """:func:`sku_ladder` for many SKUs without a guardrail ladder at once: ``[n, size]``.

    The same geometric grid between floor and ceiling (0.5x and 2x the list price
    where unset) as :func:`pricing.guardrails.candidate_ladder`, snapped to each
    spec's bounds and price ending with one
    :func:`~pricing.guardrails.stack_guardrails` table. Rows may repeat a price (the
    solver allows it).
    """
    list_price = np.array([s.list_price for s in skus], dtype=float)
    lo = np.array([r.floor if r.floor is not None else 0.5 * s.list_price
                   for r, s in zip(rails, skus, strict=True)])  # fmt: skip
    hi = np.array([r.ceiling if r.ceiling is not None else 2.0 * s.list_price
                   for r, s in zip(rails, skus, strict=True)])  # fmt: skip
    hi = np.maximum(hi, lo)
    frac = np.linspace(0.0, 1.0, size)[None, :]
    grid = list_price[:, None] * np.exp(
        np.log(lo / list_price)[:, None] * (1 - frac) + np.log(hi / list_price)[:, None] * frac
    )
    from pricing.guardrails import stack_guardrails

    return np.asarray(stack_guardrails(list(specs), len(specs)).snap(np.round(grid, 2)))


# ------------------------------------------------------------------ the re-fit
@dataclass
class _Solved:
    surfaces: dict[tuple[str, str], SurfaceRecord]
    now_price: dict[tuple[str, str], float]
    rails: dict[tuple[str, str], tuple[Guardrails, SkuConfig]]


class Refitter:
    """Runs re-fits (and approvals) against one store with one config bundle.

    Args:
        store: the price store (its client also holds the re-fit state).
        bundle: operator configs: the live config version's bundle
            (:func:`service.config.versions.live_config`).
        config_version: that version's number, recorded in every re-fit record and
            published version (``None``: the bundle did not come from Redis).
        device: ``auto``, ``cpu`` or ``gpu`` (see :func:`select_devices`).
        reporter: progress sink (default: log records).
        lock_ttl_s: lock lifetime; a heartbeat thread extends it every third of it while
            the re-fit runs, so a crashed worker blocks the next one for at most this long.
        history_hours: events kept for the panel (older ones are dropped).
        clock: time source.
        owner: name written into the lock (host:pid by default).
        validation_margin: the held-out check rejects a fit whose held-out deviance
            exceeds the naive mean's by more than this fraction; ``None`` turns the
            check off.
    """

    def __init__(
        self,
        store: PriceStore,
        bundle: ConfigBundle,
        *,
        config_version: int | None = None,
        device: str = "auto",
        reporter: Reporter | None = None,
        lock_ttl_s: float = 30.0,
        history_hours: int = 7 * 24,
        clock: Callable[[], datetime] = _now,
        owner: str | None = None,
        validation_margin: float | None = 0.10,
    ) -> None:
        self.store = store
        self.validation_margin = validation_margin
        self.bundle = bundle
        self.config_version = config_version
        self.device = device
        self.reporter: Reporter = reporter or LogReporter()
        self.lock_ttl_s = lock_ttl_s
        self.history_hours = history_hours
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.state = RefitState(store.client)
        self.keep = bundle.defaults.keep_versions
        self._heartbeat = _Heartbeat(self.state, "", lock_ttl_s)

    # ----------------------------------------------------------------- run
    def run(
        self,
        *,
        record_id: str | None = None,
        trigger: str = "manual",
        force: bool = False,
        allow_during_window: bool = False,
    ) -> RefitRecord:
        """Run one re-fit and return its record (also stored in Redis).

        Args:
            record_id: a queued request's id (its record is updated), else a new one.
            trigger: why it runs (``manual``, ``cadence``, ``window_closed``, ...).
            force: publish even when no new event arrived.
            allow_during_window: also re-fit SKUs of drops whose window is open.

        Returns:
            The finished :class:`RefitRecord`; ``state`` says what happened. A failure
            is recorded (``failed`` with the reason) rather than raised, except a lost
            fence, which is recorded and re-raised as :class:`FenceLost`.
        """
        record = self.state.get_record(record_id) if record_id else None
        if record is None:
            record = RefitRecord(
                id=record_id or new_refit_id(), trigger=trigger, created_at=_iso(self.clock())
            )
        elif record.trigger.endswith(":force"):
            force = True
        start = time.perf_counter()
        record.started_at = _iso(self.clock())
        record.config_version = self.config_version
        lock = self.state.acquire(self.owner, self.lock_ttl_s)
        if lock is None:
            record.state = "locked"
            record.reasons.append(f"another worker holds the re-fit lock ({self.state.holder()})")
            record.finished_at = _iso(self.clock())
            self.state.save_record(record)
            REFITS.labels("locked").inc()
            self.reporter.note(
                "re-fit skipped: another worker holds the lock",
                refit_id=record.id,
                holder=self.state.holder(),
            )
            return record
        token, lock_value = lock
        record.fence = token
        record.state = "running"
        self.state.save_record(record)
        self.state.client.set(self.state.key("last"), record.started_at)
        lost: FenceLost | None = None
        heartbeat = _Heartbeat(self.state, lock_value, self.lock_ttl_s)
        self._heartbeat = heartbeat
        try:
            with heartbeat:
                self._run_locked(
                    record, lock_value, force=force, allow_during_window=allow_during_window
                )
        except FenceLost as exc:
            record.state = "failed"
            record.reasons.append(f"fence lost: {exc}")
            lost = exc
        except Exception as exc:  # recorded for the operator, the live version is unchanged
            record.state = "failed"
            record.reasons.append(f"{type(exc).__name__}: {exc}")
            log.exception("re-fit failed", extra={"refit_id": record.id})
        finally:
            self.state.release(lock_value)
            record.finished_at = _iso(self.clock())
            self.state.save_record(record)
            REFIT_SECONDS.labels(record.state).observe(time.perf_counter() - start)
            REFITS.labels(record.state).inc()
            self.reporter.note(
                f"re-fit {record.state}",
                refit_id=record.id,
                version=record.version,
                seconds=round(time.perf_counter() - start, 3),
                reasons=record.reasons[-5:],
            )
        if lost is not None:
            raise lost
        return record

    @contextmanager
    def _stage(self, record: RefitRecord, name: str, lock_value: str) -> Iterator[dict[str, Any]]:
        if self._heartbeat.lost.is_set() or not self.state.extend(lock_value, self.lock_ttl_s):
            raise FenceLost(f"lock lost before stage {name!r} (held by {self.state.holder()!r})")
        self.reporter.stage_started(name)
        detail: dict[str, Any] = {}
        t0 = time.perf_counter()
        yield detail
        seconds = time.perf_counter() - t0
        record.stages.append(StageTiming(name, round(seconds, 6), detail))
        REFIT_STAGE_SECONDS.labels(name).observe(seconds)
        self.reporter.stage_finished(name, seconds, detail)
        self.state.save_record(record)

    def _run_locked(
        self, record: RefitRecord, lock_value: str, *, force: bool, allow_during_window: bool
    ) -> None:
        import jax

        from service.worker import frozen_skus

        now = self.clock()
        devices = select_devices(self.device)
        record.device = describe_devices(devices)
        self.reporter.note(
            "re-fit started", refit_id=record.id, device=record.device, fence=record.fence
        )
        live_version = self.store.live_version()
        record.previous_version = live_version
        frozen = frozenset() if allow_during_window else frozen_skus(self.bundle, now)

        # ------------------------------------------------------------ panel
        with self._stage(record, "panel", lock_value) as d:
            entries = self._read_unacked()
            record.events_read = len(entries)
            d["events_read"] = len(entries)
            # An entry no reader can decode (old or hand-written data) would fail this and
            # every later re-fit: it goes to the dead letters, acknowledged, and the
            # re-fit learns from the rest (service.codec).
            entries, poisoned = split_poisoned(entries)
            record.dead_lettered = self.store.dead_letter(REFIT_GROUP, poisoned)
            d["dead_lettered"] = record.dead_lettered
            REFIT_DEAD_LETTERED.inc(record.dead_lettered)
            if not entries and not force:
                record.state = "no_change"
                record.reasons.append("no new events since the last re-fit")
                return
            history = self.state.load_history()
            fresh = events_frame(entries)
            merged = fresh if history is None else pd.concat([history, fresh], ignore_index=True)
            # pandas concatenates datetime64[us, UTC] (the stored history) and
            # datetime64[ns, UTC] (a fresh batch) to object: bring them back to one dtype.
            merged["ts"] = pd.to_datetime(merged["ts"], utc=True)
            before = len(merged)
            merged = dedupe_events(merged)
            d["duplicates_dropped"] = before - len(merged)
            cutoff = now - timedelta(hours=self.history_hours)
            merged = merged[merged["ts"] >= cutoff].sort_values("ts", kind="stable")
            merged = merged.reset_index(drop=True)
            d["events_kept"] = len(merged)
            pairs = self._config_pairs(merged)
            inventory_now = self.store.get_inventories(pairs)
            list_prices = {s.sku: s.list_price for dr in self.bundle.drops for s in dr.skus}
            # The hour under way is still selling: the panel stops at its start.
            cut = pd.Timestamp(now).floor("h")
            sales = merged[merged["sku"].isin({p[0] for p in pairs})]
            panel = build_panel(
                sales, inventory_now=inventory_now, list_prices=list_prices, end=cut
            )
            d["panel_rows"] = len(panel)
            d["pairs"] = int(panel[["sku", "market"]].drop_duplicates().shape[0])
        if panel.empty:
            record.state = "no_change"
            configured = merged[merged["sku"].isin({p[0] for p in pairs})]
            sold = configured[configured["type"] == "sale"]
            if not sold.empty and bool((sold["ts"] >= cut).all()):
                # Say why rather than "no sales": the hour under way is still selling.
                record.reasons.append(
                    f"{len(sold)} sale(s) of a configured SKU, all in the hour under way "
                    f"(since {cut.isoformat()}); the panel stops at the start of that hour, "
                    "so they are fitted once it has ended"
                )
            else:
                record.reasons.append("no sales of a configured SKU in the retained events")
            self._commit_history(lock_value, merged)
            self.store.ack(REFIT_GROUP, entries)
            return

        # ------------------------------------------------------------ intensity
        with self._stage(record, "intensity", lock_value) as d:
            from pricing.intensity import EVENT_TYPES, IntensityParams, build_intensity_index

            signal = merged[merged["type"].isin(EVENT_TYPES)]
            signal = signal[signal["sku"].isin(set(panel["sku"]))]
            params = IntensityParams()
            index = (
                build_intensity_index(
                    _intensity_input(signal),
                    window_hours=self.bundle.defaults.intensity_window_hours,
                    params=params,
                    start=panel["period"].min(),
                    end=cut - pd.Timedelta(hours=1),
                )
                if not signal.empty
                else None
            )
            # The fit sees only the exogenous part of the index (announcements, claims,
            # listings): the sales and velocity-spike parts count the very sales being
            # explained, so as a regressor they soak up the price effect and pull the
            # elasticity toward zero (regressing sales on a function of themselves).
            exogenous = _exogenous_index(index)
            panel = attach_intensity(panel, exogenous)
            current = _current_intensity(exogenous)
            d["index_rows"] = 0 if index is None else len(index)
            d["mean_intensity"] = round(float(panel["intensity"].mean()), 4)
            # Centre the index per pair (see the module docstring): the fit's elasticity is
            # then the one at the pair's usual intensity, where its data are.
            pair_cols = [panel["sku"], panel["market"]]
            centre = panel.groupby(pair_cols)["intensity"].mean()
            panel["intensity"] = panel["intensity"] - panel.groupby(pair_cols)[
                "intensity"
            ].transform("mean")
            intensity_mean = {(k[0], k[1]): float(v) for k, v in centre.items()}

        # ------------------------------------------------------------ fit
        with self._stage(record, "fit", lock_value) as d, jax.default_device(devices[0]):
            previous = self._load_fit(live_version, record)
            fit = self._fit(panel, previous, devices)
            table = fit.table
            d["rows"] = len(table)
            d["converged"] = int(np.asarray(table["converged"]).sum())
            d["median_elasticity"] = round(float(np.nanmedian(table["elasticity"])), 4)
            d["warm_start"] = previous is not None
            replace = self._check_elasticities(fit, previous, record)
            d["elasticities_replaced"] = len(replace)
            validation = self._holdout_check(panel, fit, devices)
            d["validation"] = validation

        # ------------------------------------------------------------ solve
        with self._stage(record, "solve", lock_value) as d, jax.default_device(devices[0]):
            solved = self._solve(
                fit,
                panel,
                replace,
                current,
                intensity_mean,
                inventory_now,
                now,
                frozen,
                record,
                devices,
                params.half_life("announcement"),
            )
            d["surfaces"] = len(solved.surfaces)
            d["frozen_skus"] = len(frozen)
            if frozen:
                record.reasons.append(
                    f"{len(frozen)} SKU(s) keep their live surfaces: their drop's window is "
                    "open and the drop does not set refit_during_window"
                )

        # ------------------------------------------------------------ validate
        with self._stage(record, "validate", lock_value) as d:
            publish, held = self._validate(solved, inventory_now, now, record)
            if validation["outcome"] == "rejected":
                record.reasons.append(validation["reason"])
                publish, held = [], []
            d["publish"] = len(publish)
            d["held"] = len(held)

        # ------------------------------------------------------------ publish
        with self._stage(record, "publish", lock_value) as d:
            fit_blob = _fit_bytes(fit)
            writes: dict[str, bytes | str] = {
                self.state.key("fit", record.id): fit_blob,
                self.state.key("history"): _history_bytes(merged),
            }
            self._supersede_pending(lock_value)
            if held:
                approval = Approval(
                    id=record.id,
                    refit_id=record.id,
                    fit_id=record.id,
                    created_at=_iso(now),
                    changes=held,
                )
                held_pairs = {(c["sku"], c["market"]) for c in held}
                writes[self.state.key("approval", approval.id)] = json.dumps(approval.to_dict())
                writes[self.state.key("approval", approval.id, "surfaces")] = _pack_surfaces(
                    {p: solved.surfaces[p] for p in held_pairs}
                )
                record.approval_id = approval.id
            self.state.set_if_owner(lock_value, writes)
            self.state.client.zadd(self.state.key("fits"), {record.id: now.timestamp()})
            if held:
                self.state.client.zadd(self.state.key("approvals"), {record.id: now.timestamp()})
            summary = _fit_summary(fit, replace)
            summary["validation"] = validation
            record.summary = summary
            if publish:
                version = self._publish(
                    lock_value,
                    {p: solved.surfaces[p] for p in publish},
                    meta={
                        "refit_id": record.id,
                        "fit_id": record.id,
                        "fence": record.fence,
                        "device": record.device,
                        "trigger": record.trigger,
                        "events_read": record.events_read,
                        "config_version": record.config_version,
                        "fit": summary,
                    },
                )
                record.version = version
                record.state = "published"
                d["version"] = version
            else:
                record.state = "held" if held else "no_change"
                if not held and validation["outcome"] != "rejected":
                    record.reasons.append("no surface passed validation")
            self.store.ack(REFIT_GROUP, entries)
            self._prune_fits()
            d["acknowledged"] = len(entries)

    # --------------------------------------------------------------- stages
    def _read_unacked(self) -> list[StreamEvent]:
        """Entries pending for our consumer (a crashed run's), then new ones.

        Fields are left as bytes so :func:`events_frame` decodes them column by column:
        at a day of events for 10,000 SKUs, decoding entry by entry was most of the panel
        stage.
        """
        skus = self.store.skus()
        if not skus:
            return []
        self.store.ensure_group(REFIT_GROUP, skus=skus)
        read = functools.partial(
            self.store.read_events, REFIT_GROUP, CONSUMER, skus=skus, count=50_000, decode=False
        )
        pending = read(start="0")  # from the start of our pending list
        fresh = read(start=">")
        if pending:
            self.reporter.note(
                "re-reading events left pending by an earlier re-fit", pending=len(pending)
            )
        return pending + fresh

    def _config_pairs(self, events: pd.DataFrame) -> list[tuple[str, str]]:
        configured = {(s.sku, m) for dr in self.bundle.drops for s in dr.skus for m in dr.markets}
        pairs = events[["sku", "market"]].drop_duplicates()
        seen = set(zip(pairs["sku"], pairs["market"], strict=True))
        return sorted(seen & configured)

    def _load_fit(self, live_version: str | None, record: RefitRecord) -> Any:
        if live_version is None:
            return None
        info = next((v for v in self.store.list_versions() if v.version == live_version), None)
        fit_id = (info.meta.get("fit_id") if info is not None else None) if info else None
        if not fit_id:
            return None
        blob = self.state.load_fit_blob(str(fit_id))
        if blob is None:
            record.reasons.append(f"warm start skipped: fit {fit_id} of {live_version} is gone")
            return None
        try:
            return _fit_from_bytes(blob)
        except Exception as exc:  # an unreadable old fit is not fatal: fit from scratch
            record.reasons.append(f"warm start skipped: fit {fit_id} unreadable ({exc})")
            return None

    def _fit(self, panel: pd.DataFrame, previous: Any, devices: Sequence[Any]) -> Any:
        """One joint fit on one device; on several, one fit per block of SKUs per device.

        With ``D`` devices the (SKU, market) rows are cut into ``D`` contiguous blocks
        (sorted keys, equal sizes); each block is fitted on its own device, in parallel,
        and the results are merged (:func:`_merge_fits`). Rows are independent given the
        shared daily profile, which each block estimates from its own SKUs.
        """
        from concurrent.futures import ThreadPoolExecutor

        import jax

        from pricing.model import fit_elasticity

        cats = self.bundle.categories.categories
        sku_cat = {s.sku: s.category for dr in self.bundle.drops for s in dr.skus}

        def fit_block(block: pd.DataFrame, device: Any) -> Any:
            with jax.default_device(device):
                return fit_elasticity(
                    block,
                    sku="sku",
                    market="market",
                    period="period",
                    price="price",
                    quantity="quantity",
                    intensity="intensity",
                    sold_out="sold_out",
                    priors={name: (p.mean, p.sd) for name, p in cats.items()} or None,
                    categories={s: sku_cat[s] for s in block["sku"].unique() if s in sku_cat},
                    init=previous,
                )

        pairs = panel[["sku", "market"]].drop_duplicates().sort_values(["sku", "market"])
        if len(devices) == 1 or len(pairs) < 2 * len(devices):
            return fit_block(panel, devices[0])
        block_of = pd.Series(
            np.arange(len(pairs)) * len(devices) // len(pairs),
            index=pd.MultiIndex.from_frame(pairs),
        )
        which = block_of.reindex(pd.MultiIndex.from_frame(panel[["sku", "market"]])).to_numpy()
        blocks = [panel[which == b] for b in range(len(devices))]
        with ThreadPoolExecutor(max_workers=len(devices)) as pool:
            fits = list(pool.map(fit_block, blocks, devices))
        return _merge_fits(fits)

    def _holdout_check(
        self, panel: pd.DataFrame, fit: Any, devices: Sequence[Any]
    ) -> dict[str, Any]:
        """Score a refit on the earlier hours against the naive mean on the latest ones.

        Returns the fit-stage detail: ``outcome`` (``passed``, ``rejected``, ``skipped``),
        the scores (:meth:`pricing.validation.HoldoutScore.to_dict`), the hours held out
        and, when rejected or skipped, the ``reason``.
        """
        from pricing.validation import holdout_score, holdout_split

        out: dict[str, Any] = {"margin": self.validation_margin}
        if self.validation_margin is None:
            out.update(outcome="skipped", reason="held-out check turned off")
            REFIT_VALIDATIONS.labels("skipped").inc()
            return out
        n_periods = int(panel["period"].nunique())
        if n_periods < 2:
            out.update(
                outcome="skipped", reason=f"{n_periods} hour(s) in the panel: none to hold out"
            )
            REFIT_VALIDATIONS.labels("skipped").inc()
            return out
        train, test = holdout_split(panel, fraction=VALIDATION_FRACTION)
        out["holdout_from"] = pd.Timestamp(test["period"].min()).isoformat()
        out["holdout_hours"] = int(test["period"].nunique())
        scorable = (~test["sold_out"].to_numpy(bool)).sum()
        if train.empty or scorable < VALIDATION_MIN_CELLS:
            out.update(
                outcome="skipped",
                reason=f"{int(scorable)} scorable held-out hour(s), the check needs "
                f"{VALIDATION_MIN_CELLS}",
            )
            REFIT_VALIDATIONS.labels("skipped").inc()
            return out
        early = self._fit(train, fit, devices)
        score = holdout_score(
            early,
            train,
            test,
            market="market",
            intensity="intensity",
            sold_out="sold_out",
        )
        out.update(score.to_dict())
        if score.n_cells < VALIDATION_MIN_CELLS:
            out.update(
                outcome="skipped",
                reason=f"{score.n_cells} held-out hour(s) could be scored, the check needs "
                f"{VALIDATION_MIN_CELLS}",
            )
        elif score.worse_than_naive(self.validation_margin):
            out.update(
                outcome="rejected",
                reason=(
                    f"held-out check: the new fit's mean Poisson deviance "
                    f"{score.model_deviance:.4g} on the last {out['holdout_hours']} hour(s) "
                    f"is worse than the naive per-SKU mean's {score.naive_deviance:.4g} by "
                    f"more than {self.validation_margin:.0%}; nothing published, the live "
                    "surfaces stay"
                ),
            )
        else:
            out["outcome"] = "passed"
        REFIT_VALIDATIONS.labels(out["outcome"]).inc()
        if score.n_cells:
            REFIT_HOLDOUT_DEVIANCE.labels("model").observe(score.model_deviance)
            REFIT_HOLDOUT_DEVIANCE.labels("naive").observe(score.naive_deviance)
        return out

    def _check_elasticities(self, fit: Any, previous: Any, record: RefitRecord) -> dict[int, float]:
        """Rows whose elasticity is rejected -> the elasticity used instead."""
        table = fit.table
        sku_cat = {s.sku: s.category for dr in self.bundle.drops for s in dr.skus}
        cats = self.bundle.categories.categories
        prev_beta: dict[tuple[str, str], float] = {}
        if previous is not None:
            for key, beta in zip(
                previous.keys, np.asarray(previous.table["elasticity"]), strict=True
            ):
                prev_beta[(key[0], key[1])] = float(beta)
        replace: dict[int, float] = {}
        betas = np.asarray(table["elasticity"], dtype=float)
        for i, key in enumerate(fit.keys):
            sku, market = key[0], key[1]
            prior = cats.get(sku_cat.get(sku, ""))
            lo, hi = prior.allowed_range if prior is not None else (-math.inf, 0.0)
            beta = betas[i]
            if math.isfinite(beta) and lo <= beta <= hi:
                continue
            old = prev_beta.get((sku, market))
            if old is not None and math.isfinite(old) and lo <= old <= hi:
                new, source = old, "its previous fit"
            elif prior is not None:
                new, source = prior.mean, f"the {sku_cat[sku]} prior mean"
            else:
                new, source = -1.0, "a unit-elastic default (no category prior)"
            replace[i] = new
            record.reasons.append(
                f"{sku}/{market}: elasticity {beta:.4g} outside allowed range [{lo}, {hi}]; "
                f"using {new:.4g} from {source}"
            )
        return replace

    def _solve(
        self,
        fit: Any,
        panel: pd.DataFrame,
        replace: Mapping[int, float],
        current: Mapping[tuple[str, str], float],
        intensity_mean: Mapping[tuple[str, str], float],
        inventory_now: Mapping[tuple[str, str], int],
        now: datetime,
        frozen: frozenset[str],
        record: RefitRecord,
        devices: Sequence[Any],
        half_life: float,
    ) -> _Solved:
        from pricing.guardrails import apply_guardrails
        from pricing.intensity import forecast_intensity

        solved = _Solved({}, {}, {})
        row_of = {tuple(k): i for i, k in enumerate(fit.keys)}
        table = fit.table  # a computed property: build it once
        betas = np.asarray(table["elasticity"], dtype=float)
        extra = {
            name: np.asarray(table[col], dtype=float)
            for name, col in (
                ("beta_se", "elasticity_se"),
                ("delta", "intensity_shift"),
                ("gamma", "intensity_lift"),
            )
            if col in table.columns
        }
        for drop in self.bundle.drops:
            horizon = drop_horizon(drop, now)
            if horizon is None:
                continue
            rows: list[int] = []
            specs: list[Any] = []
            ladders: list[np.ndarray] = []
            meta: list[tuple[tuple[str, str], SkuConfig, Guardrails]] = []
            inv: list[int] = []
            drop_rails = self.bundle.defaults.guardrails.merged(drop.guardrails)
            grid_rows: list[int] = []
            for sku in drop.skus:
                if sku.sku in frozen:
                    continue
                rails = drop_rails.merged(sku.guardrails)
                for market in drop.markets:
                    i = row_of.get((sku.sku, market))
                    if i is None:
                        continue
                    try:
                        spec = guardrail_spec(rails, sku, drop, horizon)
                        if spec.ladder is None:  # filled for all grid rows at once below
                            ladder = np.empty(0)
                            grid_rows.append(len(rows))
                        else:
                            ladder = sku_ladder(spec, rails, sku)
                    except ValueError as exc:
                        record.reasons.append(f"{sku.sku}/{market}: guardrails unusable: {exc}")
                        continue
                    units = inventory_now.get((sku.sku, market), sku.inventory.get(market, 0))
                    rows.append(i)
                    specs.append(spec)
                    ladders.append(ladder)
                    meta.append(((sku.sku, market), sku, rails))
                    inv.append(max(0, int(units)))
            if not rows:
                continue
            if grid_rows:
                grids = grid_ladders(
                    [specs[j] for j in grid_rows],
                    [meta[j][2] for j in grid_rows],
                    [meta[j][1] for j in grid_rows],
                )
                for j, grid in zip(grid_rows, grids, strict=True):
                    ladders[j] = grid
            k = max(len(x) for x in ladders)
            prices = np.stack([np.pad(x, (0, k - len(x)), mode="edge") for x in ladders])
            starts = [horizon.start + horizon.period * t for t in range(horizon.periods)]
            hours = np.array([ts.astimezone(UTC).hour for ts in starts])
            offsets = np.array([max(0.0, (ts - now).total_seconds() / 3600) for ts in starts])
            exo = np.array([current.get(m[0], 0.0) for m in meta])
            cur = exo
            centre = np.array([intensity_mean.get(m[0], 0.0) for m in meta])
            # The fit's regressor is the exogenous index centred per pair; the window's
            # path is that index decaying with its half-life from its value now.
            intensity = forecast_intensity(exo, offsets, half_life) - centre[:, None]
            # The fit's rates are per panel period (an hour); the drop's periods may differ.
            scale = (horizon.period / timedelta(hours=1)) / (fit.period_hours or 1.0)
            rates = self._rates(fit, rows, prices, intensity, hours, replace) * scale
            good = np.all(np.isfinite(rates), axis=(1, 2)) & np.all(rates >= 0, axis=(1, 2))
            for bad_row in np.flatnonzero(~good):
                sku_key = meta[int(bad_row)][0]
                record.reasons.append(
                    f"{sku_key[0]}/{sku_key[1]}: demand not finite after the fit; keeps its "
                    "live surface"
                )
            keep = np.flatnonzero(good)
            if keep.size == 0:
                continue
            inv_arr = np.asarray(inv)[keep]
            cost = np.array(
                [meta[j][1].unit_cost if drop.objective == "profit" else 0.0 for j in keep]
            )
            salvage = np.array([meta[j][1].salvage_value for j in keep])
            price_surface = _solve_sharded(
                rates[keep], prices[keep], inv_arr, cost, salvage, devices
            )
            guarded, codes = apply_guardrails(
                price_surface, [specs[j] for j in keep], inventory=inv_arr
            )
            t_now = max(0, math.floor((now - horizon.start) / horizon.period))
            t_now = min(t_now, horizon.periods - 1)
            for pos, j_keep in enumerate(keep):
                j = int(j_keep)
                pair, sku, rails = meta[j]
                n = int(inv_arr[pos])
                i = rows[j]
                beta = replace.get(i, betas[i])
                solved.surfaces[pair] = SurfaceRecord(
                    price=np.ascontiguousarray(guarded[pos, : n + 1]),
                    period_start=horizon.start,
                    period_seconds=int(horizon.period.total_seconds()),
                    guardrail_codes=np.ascontiguousarray(codes[pos, : n + 1]),
                    currency=self.bundle.currency_for(sku),
                    elasticity={
                        "beta": float(beta),
                        **{k: float(v[i]) for k, v in extra.items() if math.isfinite(v[i])},
                    },
                    explain={
                        "refit_id": record.id,
                        "objective": drop.objective,
                        "drop": drop.id,
                        "intensity_now": float(cur[j]),
                        "intensity_mean": float(centre[j]),
                        "intensity_forecast": [float(v) for v in intensity[j]],
                        "elasticity_replaced": i in replace,
                    },
                )
                solved.now_price[pair] = float(guarded[pos, n, t_now])
                solved.rails[pair] = (rails, sku)
        return solved

    def _rates(
        self,
        fit: Any,
        rows: Sequence[int],
        prices: np.ndarray,
        intensity: np.ndarray,
        hours: np.ndarray,
        replace: Mapping[int, float],
    ) -> np.ndarray:
        """Posterior expected units per fit period ``[len(rows), T, K]`` for the given rows.

        Rows in ``replace`` use the replacement elasticity; the fit's ``x = log(p/p_ref)``
        is centred at the row's reference price, so the level there is kept.
        """
        from pricing.model import DemandParams

        s_all = len(fit.keys)
        full_prices = np.ones((s_all, prices.shape[1]))
        full_prices[list(rows)] = prices
        full_int = np.zeros((s_all, intensity.shape[1]))
        full_int[list(rows)] = intensity
        params = fit.params
        if replace:
            beta = np.array(params.elasticity, dtype=float, copy=True)
            for i, value in replace.items():
                beta[i] = value
            params = DemandParams(params.alpha, beta, params.intensity_lift, params.intensity_shift)
        # The posterior expected demand (the same rates the simulator's engine prices):
        # E[λ] over the fit's Laplace posterior, not the plug-in λ(θ̂).
        with np.errstate(over="ignore", invalid="ignore"):
            rates = np.asarray(
                fit.posterior_rates(full_prices, intensity=full_int, hours=hours, params=params)
            )
        return rates[list(rows)].astype(np.float64)

    def _validate(
        self,
        solved: _Solved,
        inventory_now: Mapping[tuple[str, str], int],
        now: datetime,
        record: RefitRecord,
    ) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        publish: list[tuple[str, str]] = []
        held: list[dict[str, Any]] = []
        live = self._live_prices(list(solved.surfaces), inventory_now, now)
        for pair, surf in solved.surfaces.items():
            rails, sku = solved.rails[pair]
            price = np.asarray(surf.price)
            problem = _surface_problem(price, rails, sku)
            if problem:
                record.reasons.append(f"{pair[0]}/{pair[1]}: {problem}; keeps its live surface")
                continue
            band = rails.approval_band_pct
            old = live.get(pair) or sku.list_price
            new = solved.now_price[pair]
            change = 100.0 * (new - old) / old
            if band is not None and abs(change) > band + 1e-9:
                held.append(
                    {
                        "sku": pair[0],
                        "market": pair[1],
                        "live_price": round(old, 4),
                        "new_price": round(new, 4),
                        "change_pct": round(change, 2),
                        "band_pct": band,
                    }
                )
                record.reasons.append(
                    f"{pair[0]}/{pair[1]}: price would move {change:+.1f}% ({old:.2f} -> "
                    f"{new:.2f}), beyond the approval band of {band}%: held for an operator"
                )
                continue
            publish.append(pair)
        return publish, held

    def _live_prices(
        self,
        pairs: Sequence[tuple[str, str]],
        inventory_now: Mapping[tuple[str, str], int],
        now: datetime,
    ) -> dict[tuple[str, str], float]:
        """Price each pair serves now (live surface at units left now), pipelined."""
        client = self.store.client
        pipe = client.pipeline(transaction=False)
        for sku, market in pairs:
            pipe.hget(keys.live(sku), market)
        versions = pipe.execute()
        have = [(p, _text(v)) for p, v in zip(pairs, versions, strict=True) if v is not None]
        pipe = client.pipeline(transaction=False)
        for (sku, market), v in have:
            pipe.hmget(keys.surface(sku, v, market), "rows", "cols", "period_start_ms", "period_ms")
            pipe.get(keys.surface_prices(sku, v, market))
        raw = pipe.execute()
        out: dict[tuple[str, str], float] = {}
        now_ms = now.timestamp() * 1000
        for idx, (pair, _) in enumerate(have):
            header, cells = raw[2 * idx], raw[2 * idx + 1]
            if header[0] is None or cells is None:
                continue
            rows, cols, start_ms, period_ms = (int(_text(x)) for x in header)
            grid = np.frombuffer(cells, dtype="<f8").reshape(rows, cols)
            t = min(max(math.floor((now_ms - start_ms) / period_ms), 0), cols - 1)
            n = min(max(inventory_now.get(pair, rows - 1), 0), rows - 1)
            out[pair] = float(grid[n, t])
        return out

    def _publish(
        self,
        lock_value: str,
        surfaces: Mapping[tuple[str, str], SurfaceRecord],
        meta: Mapping[str, Any],
    ) -> str:
        # Extend the lock past the time a publish takes; the fence itself is checked by
        # the store, atomically with registering the version (a pause after this line
        # cannot publish once another worker holds the lock).
        if self._heartbeat.lost.is_set() or not self.state.extend(lock_value, self.lock_ttl_s):
            raise FenceLost(
                f"lock lost before publishing (held by {self.state.holder()!r}); "
                "the new version was not published"
            )
        token = lock_value.split(" ", 1)[0]
        version = f"v{self.clock():%Y%m%dT%H%M%S}-f{token}"
        self.store.publish_surfaces(
            version, surfaces, meta, keep=self.keep, fence=(self.state.key("lock"), token)
        )
        from service.audit import record_audit

        record_audit(
            self.store.client,
            "surface.publish",
            self.owner,
            {"version": version, "surfaces": len(surfaces), **meta},
        )
        self.reporter.note("version published", version=version, surfaces=len(surfaces))
        return version

    def _commit_history(self, lock_value: str, history: pd.DataFrame) -> None:
        self.state.set_if_owner(lock_value, {self.state.key("history"): _history_bytes(history)})

    def _supersede_pending(self, lock_value: str) -> None:
        for approval in self.state.pending_approvals():
            approval.status = "superseded"
            approval.decided_at = _iso(self.clock())
            self.state.set_if_owner(
                lock_value,
                {self.state.key("approval", approval.id): json.dumps(approval.to_dict())},
            )
            self.state.client.zrem(self.state.key("approvals"), approval.id)

    def _prune_fits(self) -> None:
        """Drop saved fits no kept version refers to (keeps the newest few regardless)."""
        referenced = {str(v.meta.get("fit_id")) for v in self.store.list_versions()}
        ids = [_text(i) for i in self.state.client.zrevrange(self.state.key("fits"), 0, -1)]
        for fit_id in ids[self.keep :]:
            if fit_id not in referenced:
                self.state.client.delete(self.state.key("fit", fit_id))
                self.state.client.zrem(self.state.key("fits"), fit_id)

    # ------------------------------------------------------------- approvals
    def decide(
        self,
        approval_id: str,
        *,
        approve: bool,
        decided_by: str = "",
        note: str = "",
        skus: Sequence[str] | None = None,
    ) -> Approval:
        """Approve (publish the held surfaces as a new version) or reject a held change.

        Args:
            approval_id: from :meth:`RefitState.pending_approvals`.
            approve: publish (``True``) or discard (``False``).
            decided_by: operator name for the audit trail.
            note: free text kept with the decision.
            skus: approve only these SKUs' surfaces (default: all held ones).

        Raises:
            ApprovalNotFound: no pending approval has that id.
            RefitLocked: a re-fit is running; decide again when it has finished.
        """
        approval = self.state.get_approval(approval_id)
        if approval is None or approval.status != "pending":
            state = "unknown" if approval is None else approval.status
            raise ApprovalNotFound(f"no pending approval {approval_id!r} (it is {state})")
        lock = self.state.acquire(self.owner, self.lock_ttl_s)
        if lock is None:
            raise RefitLocked(
                f"a re-fit is running ({self.state.holder()}); decide again when it finishes"
            )
        token, lock_value = lock
        self._heartbeat = _Heartbeat(self.state, lock_value, self.lock_ttl_s)
        try:
            approval.decided_at = _iso(self.clock())
            approval.decided_by = decided_by
            approval.note = note
            if approve:
                surfaces = self.state.approval_surfaces(approval_id)
                if skus is not None:
                    surfaces = {p: s for p, s in surfaces.items() if p[0] in set(skus)}
                if not surfaces:
                    raise ApprovalNotFound(
                        f"approval {approval_id!r} holds none of the SKUs {list(skus or [])}"
                    )
                approval.version = self._publish(
                    lock_value,
                    surfaces,
                    meta={
                        "refit_id": approval.refit_id,
                        "fit_id": approval.fit_id,
                        "fence": token,
                        "approval_id": approval.id,
                        "approved_by": decided_by,
                    },
                )
                approval.status = "approved"
            else:
                approval.status = "rejected"
            from service.audit import record_audit

            record_audit(
                self.store.client,
                f"refit.{'approve' if approve else 'reject'}",
                decided_by or self.owner,
                {
                    "approval_id": approval.id,
                    "version": approval.version,
                    "note": note,
                    "skus": list(skus) if skus else None,
                },
            )
            self.state.set_if_owner(
                lock_value,
                {self.state.key("approval", approval.id): json.dumps(approval.to_dict())},
            )
            self.state.client.zrem(self.state.key("approvals"), approval.id)
        finally:
            self.state.release(lock_value)
        return approval


# ------------------------------------------------------------------ helpers
class _Heartbeat:
    """Keeps extending the lock while a re-fit runs; ``lost`` is set if it cannot.

    A long stage (a first JIT compile, a 100k-SKU solve) then never outlives a short
    TTL, and a crashed worker's lock still expires within one TTL.
    """

    def __init__(self, state: RefitState, lock_value: str, ttl_s: float) -> None:
        self.state, self.lock_value, self.ttl_s = state, lock_value, ttl_s
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            try:
                ok = self.state.extend(self.lock_value, self.ttl_s)
            except Exception:  # Redis away for a moment: the next beat retries
                continue
            if not ok:
                self.lost.set()
                return

    def __enter__(self) -> _Heartbeat:
        self._thread = threading.Thread(target=self._beat, name="refit-lock", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


def _intensity_input(signal: pd.DataFrame) -> pd.DataFrame:
    """The decoded events as the index reads them (:data:`pricing.events.EVENT_KINDS`):
    each indexed kind's size field kept on its own rows only, and a stimulus whose size
    is missing given its kind's default size (a sale keeps no default: it has units)."""
    out = signal.copy()
    for column in dict.fromkeys(EVENT_KINDS[k].size_field for k in INDEX_KINDS):
        kinds = [k for k in INDEX_KINDS if EVENT_KINDS[k].size_field == column]
        out[column] = out[column].where(out["type"].isin(kinds))
        for kind in kinds:
            if EVENT_KINDS[kind].stimulus:
                missing = out["type"].eq(kind) & out[column].isna()
                out.loc[missing, column] = EVENT_KINDS[kind].size_default
    return out.reset_index(drop=True)


_EXOGENOUS = STIMULUS_KINDS
"""Index components driven by events outside the till (the event table's stimuli); the
rest (sales, velocity spike) move with the demand being priced."""


def _exogenous_index(index: pd.DataFrame | None) -> pd.DataFrame | None:
    """The index with ``intensity`` replaced by the sum of its exogenous components."""
    if index is None or index.empty:
        return index
    comps = [c for c in _EXOGENOUS if c in index.columns]
    exo = index[comps].sum(axis=1) if comps else pd.Series(0.0, index=index.index)
    return index.assign(intensity=exo)


def _current_intensity(exogenous: pd.DataFrame | None) -> dict[tuple[str, str], float]:
    """Per pair: the exogenous index now (its last hour), where the window's path starts.

    Args:
        exogenous: output of :func:`_exogenous_index` (the fit's regressor), or ``None``.
    """
    if exogenous is None or exogenous.empty:
        return {}
    last = exogenous.sort_values("hour").groupby(["sku", "market"], sort=False).tail(1)
    return {
        (s, m): float(v) if math.isfinite(v) and v >= 0 else 0.0
        for s, m, v in zip(last["sku"], last["market"], last["intensity"], strict=True)
    }


def _surface_problem(price: np.ndarray, rails: Guardrails, sku: SkuConfig) -> str | None:
    if not np.all(np.isfinite(price)):
        return "surface has NaN or inf cells"
    if np.any(price <= 0):
        return f"surface has non-positive prices (min {price.min():.4g})"
    tol = 1e-6
    if rails.floor is not None and price.min() < rails.floor - tol:
        return f"surface price {price.min():.4g} below floor {rails.floor}"
    if rails.ceiling is not None and price.max() > rails.ceiling + tol:
        return f"surface price {price.max():.4g} above ceiling {rails.ceiling}"
    if not rails.allow_below_cost and price.min() < sku.unit_cost - tol:
        return f"surface price {price.min():.4g} below unit cost {sku.unit_cost}"
    if rails.ladder is not None:
        ladder = np.asarray(rails.ladder)
        off = np.min(np.abs(price.reshape(-1, 1) - ladder[None, :]), axis=1) > tol
        if off.any():
            return f"surface price {price.reshape(-1)[off][0]:.4g} is not on the ladder"
    return None


def _merge_fits(fits: Sequence[Any]) -> Any:
    """One :class:`~pricing.model.ElasticityFit` from fits of disjoint blocks of rows.

    Row arrays are concatenated in block order. The merged daily profile is the
    mean of the blocks' profiles; each row's ``α`` absorbs the difference of its
    block's profile from it on the daily scale,
    ``α_i += log mean_h e^{s_b(h)} − log mean_h e^{s̄(h)}``, so expected units per
    day are unchanged.
    """
    from pricing.model import DemandParams, ElasticityFit

    profiles = [f.daily_profile for f in fits]
    has_profile = all(p is not None for p in profiles)
    mean_profile = (
        np.mean(np.stack([p for p in profiles if p is not None]), axis=0)
        if has_profile
        else np.zeros(24)
    )
    alphas = []
    for f in fits:
        alpha = np.asarray(f.params.alpha, dtype=float)
        if has_profile:
            shift = np.log(np.mean(np.exp(f.daily_profile))) - np.log(np.mean(np.exp(mean_profile)))
            alpha = alpha + shift
        alphas.append(alpha)

    def cat(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(f, name)) for f in fits])

    def par(name: str) -> np.ndarray:
        return np.concatenate([np.asarray(getattr(f.params, name), dtype=float) for f in fits])

    first = fits[0]
    return ElasticityFit(
        keys=[k for f in fits for k in f.keys],
        params=DemandParams(
            np.concatenate(alphas),
            par("elasticity"),
            par("intensity_lift"),
            par("intensity_shift"),
        ),
        param_cov=cat("param_cov"),
        log_pref=cat("log_pref"),
        daily_profile=mean_profile if has_profile else None,
        covariate_effects=dict(first.covariate_effects),
        n_obs=cat("n_obs"),
        n_censored=cat("n_censored"),
        converged_rows=cat("converged_rows"),
        grad_norm=cat("grad_norm"),
        iterations=max(int(f.iterations) for f in fits),
        prior_mean=cat("prior_mean"),
        prior_sd=cat("prior_sd"),
        categories=np.concatenate([np.asarray(f.categories, dtype=object) for f in fits]),
        has_intensity=first.has_intensity,
        period_hours=first.period_hours,
        dtype=first.dtype,
        loss=float(sum(f.loss for f in fits)),
        shared_converged=all(f.shared_converged for f in fits),
        log_price_range=(
            cat("log_price_range") if all(f.log_price_range is not None for f in fits) else None
        ),
    )


def _fit_summary(fit: Any, replace: Mapping[int, float]) -> dict[str, Any]:
    table = fit.table
    beta = np.asarray(table["elasticity"], dtype=float)
    finite = beta[np.isfinite(beta)]
    return {
        "rows": int(len(table)),
        "converged": int(np.asarray(table["converged"]).sum()),
        "median_elasticity": float(np.median(finite)) if finite.size else None,
        "elasticity_p10_p90": [float(np.percentile(finite, 10)), float(np.percentile(finite, 90))]
        if finite.size
        else None,
        "elasticities_replaced": len(replace),
    }


def _fit_bytes(fit: Any) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit"
        fit.save(path)
        target = path if path.exists() else next(Path(tmp).iterdir())
        if target.is_dir():
            buf = io.BytesIO()
            import zipfile

            with zipfile.ZipFile(buf, "w") as zf:
                for f in sorted(target.rglob("*")):
                    if f.is_file():
                        zf.write(f, f.relative_to(target).as_posix())
            return b"DIR" + buf.getvalue()
        return b"FIL" + target.read_bytes()


def _fit_from_bytes(blob: bytes) -> Any:
    from pricing.model import ElasticityFit

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fit"
        if blob[:3] == b"DIR":
            import zipfile

            with zipfile.ZipFile(io.BytesIO(blob[3:])) as zf:
                zf.extractall(path)
        else:
            path.write_bytes(blob[3:])
        return ElasticityFit.load(path)


def _solve_sharded(
    rates: np.ndarray,
    prices: np.ndarray,
    inventory: np.ndarray,
    cost: np.ndarray,
    salvage: np.ndarray,
    devices: Sequence[Any],
) -> np.ndarray:
    """Optimal price surfaces ``[S, N+1, T]``, rows split over ``devices`` (SKU axis).

    With one device this is :func:`pricing.policy.solve_surfaces`. With several, the
    rows are cut into one contiguous block per device, each block solved on its
    device, and the blocks assembled into one ``jax.Array`` laid out with a
    ``NamedSharding`` over a one-axis ``sku`` mesh (rows are independent DPs, so
    the split changes nothing in the result).
    """
    import jax
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    from pricing.policy import solve_surfaces

    s = rates.shape[0]
    n_max = int(inventory.max())
    if len(devices) == 1 or s < len(devices):
        sol = solve_surfaces(rates, prices, inventory, unit_cost=cost, salvage=salvage)
        return np.asarray(sol.price)
    d = len(devices)
    per = math.ceil(s / d)
    pad = per * d - s

    # Pad with copies of the last row so every device gets an equal block.
    def padded(x: np.ndarray) -> np.ndarray:
        return np.concatenate([x, np.repeat(x[-1:], pad, axis=0)]) if pad else x

    rates_p, prices_p, inv_p = padded(rates), padded(prices), padded(inventory)
    cost_p, salvage_p = padded(cost), padded(salvage)
    # Every block must share N so the blocks stack: give each block's first row the max.
    blocks = []
    from concurrent.futures import ThreadPoolExecutor

    def solve_block(b: int) -> Any:
        sl = slice(b * per, (b + 1) * per)
        inv_b = inv_p[sl].copy()
        with jax.default_device(devices[b]):
            sol = solve_surfaces(
                rates_p[sl], prices_p[sl], inv_b, unit_cost=cost_p[sl], salvage=salvage_p[sl]
            )
            price = sol.price
            if price.shape[1] < n_max + 1:  # pad inventory rows up to the global N
                price = jax.numpy.pad(
                    price, ((0, 0), (0, n_max + 1 - price.shape[1]), (0, 0)), mode="edge"
                )
            return jax.device_put(price, devices[b])

    with ThreadPoolExecutor(max_workers=d) as pool:
        blocks = list(pool.map(solve_block, range(d)))
    mesh = Mesh(np.array(devices), ("sku",))
    sharding = NamedSharding(mesh, P("sku"))  # type: ignore[no-untyped-call]
    shape = (per * d, n_max + 1, rates.shape[1])
    global_price = jax.make_array_from_single_device_arrays(shape, sharding, blocks)
    return np.asarray(global_price)[:s]
