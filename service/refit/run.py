"""The re-fit's orchestration: :class:`Refitter` runs the six stages under the lock.

See :mod:`service.refit` for the stages, the fencing and the keys. Each stage is one
method here; the work of the fit, solve and validate stages is in
:mod:`service.refit.fitting` and :mod:`service.refit.solve`.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from service import keys
from service.audit import record_audit
from service.codec import events_frame, split_poisoned
from service.config.models import ConfigBundle
from service.drops import frozen_skus
from service.exceptions import FenceLost
from service.panel import build_panel, dedupe_events
from service.refit.approvals import Approvals
from service.refit.devices import describe_devices, select_devices
from service.refit.exogenous import Regressor, intensity_regressor
from service.refit.fitting import check_elasticities, fit_panel, fit_summary, holdout_check
from service.refit.lock import Heartbeat
from service.refit.progress import (
    REFIT_DEAD_LETTERED,
    REFIT_SECONDS,
    REFIT_STAGE_SECONDS,
    REFITS,
    LogReporter,
    Reporter,
)
from service.refit.solve import Solved, solve_drops, validate_surfaces
from service.store import PriceStore, StreamEvent, SurfaceRecord
from service.store.refit_state import (
    Approval,
    RefitRecord,
    RefitState,
    StageTiming,
    new_refit_id,
)

__all__ = ["CONSUMER", "REFIT_GROUP", "STAGES", "Refitter"]

log = logging.getLogger("dropprice.refit")

REFIT_GROUP = "refit"
"""Consumer group of the re-fit worker on every SKU event stream."""
CONSUMER = "refit-worker"
"""One consumer name for every worker: only the lock holder reads, and a successor
re-reads the entries a crashed predecessor left pending under the same name."""
STAGES = ("panel", "intensity", "fit", "solve", "validate", "publish")
"""Stages of a re-fit, in order."""


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat()


@dataclass
class _Read:
    """What the panel stage read: the entries to acknowledge, the retained events, the
    panel built from them, units left now and the start of the hour under way."""

    entries: list[StreamEvent]
    events: pd.DataFrame
    panel: pd.DataFrame
    pairs: list[tuple[str, str]]
    inventory_now: dict[tuple[str, str], int]
    cut: pd.Timestamp


@dataclass
class _Fitted:
    fit: Any
    replace: dict[int, float]
    validation: dict[str, Any]


class Refitter(Approvals):
    """Runs re-fits (and approvals) against one store with one config bundle.

    Args:
        store: the price store (its Redis also holds the re-fit state).
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
        self.state = RefitState(store)
        self.keep = bundle.defaults.keep_versions
        self._heartbeat = Heartbeat(self.state, "", lock_ttl_s)

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
            return self._locked_out(record)
        record.fence, lock_value = lock
        record.state = "running"
        self.state.save_record(record)
        lost: FenceLost | None = None
        self._heartbeat = Heartbeat(self.state, lock_value, self.lock_ttl_s)
        try:
            self.state.mark_started(lock_value, record.started_at)
            with self._heartbeat:
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
            self._finish(record, time.perf_counter() - start)
        if lost is not None:
            raise lost
        return record

    def _locked_out(self, record: RefitRecord) -> RefitRecord:
        """Record a re-fit that could not take the lock."""
        holder = self.state.holder()
        record.state = "locked"
        record.reasons.append(f"another worker holds the re-fit lock ({holder})")
        record.finished_at = _iso(self.clock())
        self.state.save_record(record)
        REFITS.labels("locked").inc()
        self.reporter.note(
            "re-fit skipped: another worker holds the lock", refit_id=record.id, holder=holder
        )
        return record

    def _finish(self, record: RefitRecord, seconds: float) -> None:
        record.finished_at = _iso(self.clock())
        self.state.save_record(record)
        REFIT_SECONDS.labels(record.state).observe(seconds)
        REFITS.labels(record.state).inc()
        self.reporter.note(
            f"re-fit {record.state}",
            refit_id=record.id,
            version=record.version,
            seconds=round(seconds, 3),
            reasons=record.reasons[-5:],
        )

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
        """The six stages, under the lock (see :mod:`service.refit`)."""
        import jax

        now = self.clock()
        devices = select_devices(self.device)
        record.device = describe_devices(devices)
        self.reporter.note(
            "re-fit started", refit_id=record.id, device=record.device, fence=record.fence
        )
        live_version = self.store.live_version()
        record.previous_version = live_version
        frozen = frozenset() if allow_during_window else frozen_skus(self.bundle, now)

        with self._stage(record, "panel", lock_value) as d:
            read = self._read_panel(record, d, now, force)
        if read is None:
            return
        if read.panel.empty:
            self._nothing_to_fit(record, lock_value, read)
            return
        with self._stage(record, "intensity", lock_value) as d:
            regressor = intensity_regressor(
                read.events,
                read.panel,
                window_hours=self.bundle.defaults.intensity_window_hours,
                end=read.cut,
            )
            d.update(regressor.detail)
        with self._stage(record, "fit", lock_value) as d, jax.default_device(devices[0]):
            fitted = self._fit(record, d, regressor.panel, live_version, devices)
        with self._stage(record, "solve", lock_value) as d, jax.default_device(devices[0]):
            solved = self._solve(record, d, fitted, regressor, read, now, frozen, devices)
        with self._stage(record, "validate", lock_value) as d:
            live = self.store.live_prices(list(solved.surfaces), read.inventory_now, now)
            publish, held = validate_surfaces(solved, live, record.reasons)
            if fitted.validation["outcome"] == "rejected":
                record.reasons.append(fitted.validation["reason"])
                publish, held = [], []
            d.update(publish=len(publish), held=len(held))
        with self._stage(record, "publish", lock_value) as d:
            self._publish_stage(record, d, lock_value, now, read, fitted, solved, publish, held)

    # --------------------------------------------------------------- stages
    def _read_panel(
        self, record: RefitRecord, d: dict[str, Any], now: datetime, force: bool
    ) -> _Read | None:
        """The panel stage: read, dead-letter, merge into the history, build the panel.

        Returns ``None`` (the record says ``no_change``) when nothing new was read.
        """
        entries = self._read_unacked()
        record.events_read = d["events_read"] = len(entries)
        # An entry no reader can decode (old or hand-written data) would fail this and
        # every later re-fit: it goes to the dead letters, acknowledged, and the re-fit
        # learns from the rest (service.codec).
        entries, poisoned = split_poisoned(entries)
        record.dead_lettered = d["dead_lettered"] = self.store.dead_letter(REFIT_GROUP, poisoned)
        REFIT_DEAD_LETTERED.inc(record.dead_lettered)
        if not entries and not force:
            record.state = "no_change"
            record.reasons.append("no new events since the last re-fit")
            return None
        events = self._merge_history(events_frame(entries), now, d)
        pairs = self._config_pairs(events)
        inventory_now = self.store.get_inventories(pairs)
        list_prices = {s.sku: s.list_price for dr in self.bundle.drops for s in dr.skus}
        # The hour under way is still selling: the panel stops at its start.
        cut = pd.Timestamp(now).floor("h")
        sales = events[events["sku"].isin({p[0] for p in pairs})]
        panel = build_panel(sales, inventory_now=inventory_now, list_prices=list_prices, end=cut)
        d["panel_rows"] = len(panel)
        d["pairs"] = int(panel[["sku", "market"]].drop_duplicates().shape[0])
        return _Read(entries, events, panel, pairs, inventory_now, cut)

    def _merge_history(self, fresh: pd.DataFrame, now: datetime, d: dict[str, Any]) -> pd.DataFrame:
        """The retained history with ``fresh`` added, de-duplicated, cut to the window."""
        history = self.state.load_history()
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
        return merged

    def _nothing_to_fit(self, record: RefitRecord, lock_value: str, read: _Read) -> None:
        """An empty panel: keep the history, acknowledge, and say why nothing was fitted."""
        record.state = "no_change"
        configured = read.events[read.events["sku"].isin({p[0] for p in read.pairs})]
        sold = configured[configured["type"] == "sale"]
        if not sold.empty and bool((sold["ts"] >= read.cut).all()):
            # Say why rather than "no sales": the hour under way is still selling.
            record.reasons.append(
                f"{len(sold)} sale(s) of a configured SKU, all in the hour under way "
                f"(since {read.cut.isoformat()}); the panel stops at the start of that hour, "
                "so they are fitted once it has ended"
            )
        else:
            record.reasons.append("no sales of a configured SKU in the retained events")
        self.state.save_history(lock_value, _history_bytes(read.events))
        self.store.ack(REFIT_GROUP, read.entries)

    def _fit(
        self,
        record: RefitRecord,
        d: dict[str, Any],
        panel: pd.DataFrame,
        live_version: str | None,
        devices: Sequence[Any],
    ) -> _Fitted:
        """The fit stage: fit (warm-started), parameter checks, held-out check."""
        import numpy as np

        previous = self._load_fit(live_version, record)
        fit = fit_panel(panel, self.bundle, previous, devices)
        table = fit.table
        d["rows"] = len(table)
        d["converged"] = int(np.asarray(table["converged"]).sum())
        d["median_elasticity"] = round(float(np.nanmedian(table["elasticity"])), 4)
        d["warm_start"] = previous is not None
        replace = check_elasticities(fit, previous, self.bundle, record.reasons)
        d["elasticities_replaced"] = len(replace)
        validation = holdout_check(panel, fit, self.bundle, devices, self.validation_margin)
        d["validation"] = validation
        return _Fitted(fit, replace, validation)

    def _solve(
        self,
        record: RefitRecord,
        d: dict[str, Any],
        fitted: _Fitted,
        regressor: Regressor,
        read: _Read,
        now: datetime,
        frozen: frozenset[str],
        devices: Sequence[Any],
    ) -> Solved:
        """The solve stage: every drop's surfaces from the fit."""
        solved = solve_drops(
            fitted.fit, self.bundle, regressor, fitted.replace, read.inventory_now, now, frozen,
            refit_id=record.id, reasons=record.reasons, devices=devices,
        )  # fmt: skip
        d["surfaces"] = len(solved.surfaces)
        d["frozen_skus"] = len(frozen)
        if frozen:
            record.reasons.append(
                f"{len(frozen)} SKU(s) keep their live surfaces: their drop's window is "
                "open and the drop does not set refit_during_window"
            )
        return solved

    def _publish_stage(
        self,
        record: RefitRecord,
        d: dict[str, Any],
        lock_value: str,
        now: datetime,
        read: _Read,
        fitted: _Fitted,
        solved: Solved,
        publish: list[tuple[str, str]],
        held: list[dict[str, Any]],
    ) -> None:
        """The publish stage: save fit, history and approval (fenced), publish, acknowledge."""
        self._supersede_pending(lock_value)
        approval = None
        if held:
            approval = Approval(
                id=record.id, refit_id=record.id, fit_id=record.id, created_at=_iso(now),
                changes=held,
            )  # fmt: skip
            record.approval_id = approval.id
        held_pairs = {(c["sku"], c["market"]) for c in held}
        self.state.save_results(
            lock_value,
            fit_id=record.id,
            fit_blob=fitted.fit.to_bytes(),
            history_blob=_history_bytes(read.events),
            at=now,
            approval=approval,
            approval_surfaces={p: solved.surfaces[p] for p in held_pairs},
        )
        summary = fit_summary(fitted.fit, fitted.replace)
        summary["validation"] = fitted.validation
        record.summary = summary
        if publish:
            record.version = d["version"] = self._publish(
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
            record.state = "published"
        else:
            record.state = "held" if held else "no_change"
            if not held and fitted.validation["outcome"] != "rejected":
                record.reasons.append("no surface passed validation")
        self.store.ack(REFIT_GROUP, read.entries)
        referenced = {str(v.meta.get("fit_id")) for v in self.store.list_versions()}
        self.state.prune_fits(lock_value, referenced, self.keep)
        d["acknowledged"] = len(read.entries)

    def _read_unacked(self) -> list[StreamEvent]:
        """Entries pending for our consumer (a crashed run's), then new ones.

        Fields are left as bytes so :func:`service.codec.events_frame` decodes them
        column by column.
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
        """The live version's fit to warm-start from, ``None`` when there is none."""
        from pricing.model import ElasticityFit

        if live_version is None:
            return None
        info = next((v for v in self.store.list_versions() if v.version == live_version), None)
        fit_id = info.meta.get("fit_id") if info is not None else None
        if not fit_id:
            return None
        blob = self.state.load_fit_blob(str(fit_id))
        if blob is None:
            record.reasons.append(f"warm start skipped: fit {fit_id} of {live_version} is gone")
            return None
        try:
            return ElasticityFit.from_bytes(blob)
        except Exception as exc:  # an unreadable old fit is not fatal: fit from scratch
            record.reasons.append(f"warm start skipped: fit {fit_id} unreadable ({exc})")
            return None

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
            version, surfaces, meta, keep=self.keep, fence=(keys.refit_lock(), token)
        )
        record_audit(
            self.store,
            "surface.publish",
            self.owner,
            {"version": version, "surfaces": len(surfaces), **meta},
        )
        self.reporter.note("version published", version=version, surfaces=len(surfaces))
        return version

    def _supersede_pending(self, lock_value: str) -> None:
        for approval in self.state.pending_approvals():
            approval.status = "superseded"
            approval.decided_at = _iso(self.clock())
            self.state.save_approval(lock_value, approval)


def _history_bytes(history: pd.DataFrame) -> bytes:
    """The retained events as parquet (zstd), the form the history is kept in."""
    from service.extras import require

    require("pyarrow", "parquet", "the re-fit (it keeps its event history as Parquet)")
    buf = io.BytesIO()
    history.reset_index(drop=True).to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()
