"""``dropprice demo``: a compressed creator drop priced live by the real service.

What runs, all real parts:

1. a private ``redis-server`` (:class:`service.embedded.RedisServer`, temporary data);
2. the demo drop: ``configs/drops/comic-shop-creator-drop.yaml`` with its windows moved
   to *now* and shortened to seconds; every rule the demo changes is listed
   (:mod:`service.demo.setup`) and printed before the drop opens;
3. the price service (:func:`service.app.create_app`) under uvicorn on a free local
   port, with a ``pos`` and an ``operator`` API key;
4. the shop's recent history: a day of hourly sales at its past test prices and a
   creator announcement the evening before, sent back-dated through
   ``POST /v1/events`` (with a restock ahead of them, so the drop opens with the
   config's stock);
5. a re-fit through :class:`service.refit.Refitter` before the first window and
   between windows; changes beyond the approval band are approved by the demo's
   operator over HTTP, under a name; once the first re-fit has published, the drop
   opens: its windows start now (``PUT /v1/drops/{id}``, as an operator would);
6. simulated POS terminals (:mod:`service.demo.client`): every tick they price the
   drop's SKUs with ``POST /v1/prices:batch`` (each answer carries a ``quote_id``)
   and sell what the shoppers buy with ``POST /v1/events`` (charged the quoted
   price); before the second window the creator announces again.

Each window plays one pricing period (:mod:`service.demo.truth`): within it the price
moves with the units left (the surface's inventory axis), between windows with each
re-fit. Every price served is recorded with the units left it was quoted at and the
guardrail that bound its surface cell. Units sold in a tick are the Poisson quantile
of one uniform draw per SKU and tick; the fixed-price counterfactual (every SKU at its
list price all drop long) uses the same draws, so the comparison is shopper for
shopper (:mod:`service.demo.report`).

Example:
    >>> summary = run_demo(DemoOptions(duration_s=30.0))  # doctest: +SKIP
    >>> summary["revenue"], summary["fixed_price"]["revenue"]  # doctest: +SKIP
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

from service.demo import client
from service.demo.report import summary as build_summary
from service.demo.setup import (
    DEMO_PERIOD_MINUTES,
    Recorder,
    default_config_dir,
    running_service,
    write_demo_configs,
)
from service.demo.state import DemoState, Served, SkuState
from service.demo.truth import (
    DEFAULT_TRUTH,
    TRUTH,
    ShopClock,
    announcement_index,
    hourly_rate,
    true_rate,
)

__all__ = ["DemoOptions", "run_demo", "schedule"]

DEMO_OPERATOR = "demo operator"
"""The name the demo's operator approves held price changes under."""


@dataclass(frozen=True)
class DemoOptions:
    """How the demo runs.

    Args:
        duration_s: wall-clock seconds of the drop (windows and the gaps between them).
        windows: selling windows; the engine re-fits before each.
        tick_s: seconds between two rounds of POS traffic.
        seed: seed of the shoppers' draws.
        config_dir: folder with ``defaults.yaml``, ``categories.yaml`` and
            ``drops/comic-shop-creator-drop.yaml``.
        history_hours: hours of back-dated sales the engine learns from first.
        device: JAX device of the re-fits (``cpu``, ``gpu`` or ``auto``).
    """

    duration_s: float = 90.0
    windows: int = 3
    tick_s: float = 0.25
    seed: int = 7
    config_dir: Path | None = None
    history_hours: int = 24
    device: str = "cpu"


def schedule(
    first: datetime, n: int, window_s: float, gap_s: float
) -> list[tuple[datetime, datetime]]:
    """``n`` windows of ``window_s`` seconds from ``first``, ``gap_s`` apart."""
    step = window_s + gap_s
    return [
        (first + timedelta(seconds=k * step), first + timedelta(seconds=k * step + window_s))
        for k in range(n)
    ]


def _effective_rails(drop: Mapping[str, Any], sku: Mapping[str, Any]) -> dict[str, Any]:
    return {**(drop.get("guardrails") or {}), **(sku.get("guardrails") or {})}


def _new_state(drop: Mapping[str, Any], n_win: int, window_s: float) -> DemoState:
    market = drop["markets"][0]
    state = DemoState(drop_id=drop["id"], market=market, windows=n_win, window_s=window_s)
    for sku in drop["skus"]:
        truth = TRUTH.get(sku["sku"], DEFAULT_TRUTH)
        stock = int(sku["inventory"][market])
        state.skus[sku["sku"]] = SkuState(
            sku=sku["sku"],
            market=market,
            name=sku.get("name", ""),
            list_price=float(sku["list_price"]),
            truth=truth,
            rate_per_hour=hourly_rate(truth, stock, DEMO_PERIOD_MINUTES * 60.0),
            guardrails=_effective_rails(drop, sku),
            price=float(sku["list_price"]),
            fixed_left=stock,
        )
    return state


def run_demo(
    options: DemoOptions, *, on_update: Callable[[DemoState], None] | None = None
) -> dict[str, Any]:
    """Run the demo drop end to end and return its summary (JSON-ready).

    Args:
        options: duration, windows, seed, configs.
        on_update: called with the :class:`DemoState` after every tick and stage
            (the live table).

    Returns:
        The summary of :func:`service.demo.report.summary`.
    """
    import httpx

    from service.auth import hash_api_key
    from service.config.versions import ConfigStore, live_config
    from service.embedded import RedisServer, free_port
    from service.refit import Refitter
    from service.settings import Role, Settings
    from service.store import PriceStore, connect

    started = time.monotonic()
    notify = on_update or (lambda _state: None)
    source = options.config_dir or default_config_dir()
    workdir = Path(tempfile.mkdtemp(prefix="dropprice-demo-"))
    rng = np.random.default_rng(options.seed)
    n_win = max(1, options.windows)
    # Windows and gaps share the duration 2:1. Until the first re-fit (which compiles the
    # model) has published, the drop's windows are provisional; the operator then opens
    # the drop with PUT /v1/drops/{id} and its windows start from that moment.
    slot = options.duration_s / (n_win + 0.5 * (n_win - 1))
    window_s, gap_s = slot, 0.5 * slot
    clock = ShopClock(period_s=DEMO_PERIOD_MINUTES * 60.0, window_s=window_s)
    now = datetime.now(UTC)
    windows = schedule(now + timedelta(minutes=30), n_win, window_s, gap_s)
    try:
        drop, loosened = write_demo_configs(source, workdir / "configs", windows=windows)
        state = _new_state(drop, n_win, window_s)
        state.loosened = loosened
        notify(state)
        pos_key, operator_key = uuid.uuid4().hex, uuid.uuid4().hex
        redis = RedisServer(data_dir=workdir / "redis", appendonly=False, die_with_parent=True)
        try:
            redis.start()
            settings = Settings(
                redis_url=redis.url,
                config_dir=workdir / "configs",
                api_keys={
                    hash_api_key(pos_key): Role.pos,
                    hash_api_key(operator_key): Role.operator,
                },
                log_level="WARNING",
                access_log=False,
                rate_limit_enabled=False,
                redis_timeout_ms=2000,
                resync_interval_s=1.0,
                intensity_cache_s=1.0,
            )
            store = PriceStore(connect(redis.url, timeout=30.0))
            # The demo's files seed its empty Redis, as `dropprice worker --config-dir`
            # does; from then on the service and the re-fits read the live version there.
            live = live_config(store, workdir / "configs", actor="dropprice-demo")
            if live is None:
                raise RuntimeError(f"the demo wrote no configs under {workdir / 'configs'}")
            store.keep_versions = live.bundle.defaults.keep_versions
            with (
                running_service(settings, free_port()) as base_url,
                httpx.Client(base_url=base_url, timeout=30.0) as http,
            ):
                pos = {"X-API-Key": pos_key}
                operator = {"X-API-Key": operator_key}
                refitter = Refitter(
                    store,
                    live.bundle,
                    config_version=live.version,
                    device=options.device,
                    reporter=Recorder(lambda name: _phase(state, f"re-fit: {name}", notify)),
                )
                _phase(state, "sending the shop's history", notify)
                client.send_history(http, operator, state, rng, now, options.history_hours)
                _refit(refitter, http, operator, state, notify, started)
                windows = schedule(
                    datetime.now(UTC) + timedelta(seconds=1.0), n_win, window_s, gap_s
                )
                _open_drop(http, operator, source, workdir / "configs", windows)
                live = ConfigStore(store).live() or live  # the version the PUT made
                refitter.bundle, refitter.config_version = live.bundle, live.version
                bound = _BoundBy(store)
                client.read_prices(http, pos, state, bound)
                client.read_intensity(http, pos, state)
                for s in state.skus.values():
                    s.initial_inventory = s.units_left
                for k, (opens, closes) in enumerate(windows):
                    state.window = k
                    if k == 1:
                        client.announce(http, pos, state, size=2.0, reach=250_000)
                    _wait_until(opens, state, notify, f"window {k + 1} opens in")
                    _trade(http, pos, state, rng, closes, options.tick_s, clock, bound, notify)
                    if k + 1 < n_win:
                        _refit(refitter, http, operator, state, notify, started)
                _phase(state, "closing the books", notify)
                client.read_prices(http, pos, state, bound)
                client.read_intensity(http, pos, state)
            store.close()
        finally:
            redis.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    state.phase = "done"
    notify(state)
    return build_summary(state, options.duration_s, options.seed, time.monotonic() - started)


class _BoundBy:
    """The guardrail that bound the surface cell a SKU is served from now.

    Reads each live surface once per version (from the demo's own Redis) and looks up
    the cell of the units left and the current period in its guardrail codes.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.surfaces: dict[tuple[str, str, str], Any] = {}

    def __call__(self, s: SkuState) -> str | None:
        from pricing.guardrails import bound_by

        if s.version is None or s.units_left is None or s.source == "base":
            return None
        key = (s.sku, s.market, s.version)
        if key not in self.surfaces:
            got = self.store.get_surface(s.sku, s.market, s.version)
            self.surfaces[key] = got[1] if got is not None else None
        surface = self.surfaces[key]
        if surface is None or surface.guardrail_codes is None:
            return None
        codes = np.asarray(surface.guardrail_codes)
        row = min(int(s.units_left), codes.shape[0] - 1)
        elapsed = (datetime.now(UTC) - surface.period_start).total_seconds()
        col = min(max(int(elapsed // surface.period_seconds), 0), codes.shape[1] - 1)
        return bound_by(int(codes[row, col]))


def _open_drop(
    http: Any,
    headers: Mapping[str, str],
    source: Path,
    target: Path,
    windows: list[tuple[datetime, datetime]],
) -> None:
    """Move the drop's windows to ``windows`` with ``PUT /v1/drops/{id}``, as an operator
    would: a new live config version, which the service and the next re-fit run on."""
    drop, _ = write_demo_configs(source, target, windows=windows)
    r = http.put(
        f"/v1/drops/{drop['id']}",
        content=yaml.safe_dump(drop, sort_keys=False),
        headers={**headers, "Content-Type": "application/yaml", "X-Actor": DEMO_OPERATOR},
        params={"note": "demo: the drop opens now"},
    )
    if r.status_code >= 300:
        raise RuntimeError(f"the service refused the demo drop ({r.status_code}): {r.text}")


def _phase(state: DemoState, phase: str, notify: Callable[[DemoState], None]) -> None:
    state.phase = phase
    notify(state)


def _refit(
    refitter: Any,
    http: Any,
    operator: Mapping[str, str],
    state: DemoState,
    notify: Callable[[DemoState], None],
    started: float,
) -> None:
    """Re-fit; price changes held by the approval band are approved by the operator."""
    _phase(state, "re-fit", notify)
    t0 = time.monotonic()
    record = refitter.run(trigger="demo", force=True, allow_during_window=True)
    seconds = time.monotonic() - t0
    entry = {
        "id": record.id,
        "state": record.state,
        "version": record.version,
        "seconds": round(seconds, 3),
        "events_read": record.events_read,
        "stages": record.timings,
        "reasons": list(record.reasons),
        "approval_id": record.approval_id,
        "at_s": round(time.monotonic() - started, 3),
    }
    state.refits.append(entry)
    state.log.append(
        f"re-fit {record.state} {record.version or ''} in {seconds:.1f} s "
        f"({record.events_read} events)"
    )
    if record.state == "failed":
        raise RuntimeError(f"the demo's re-fit failed: {record.reasons}")
    state.log.extend(record.reasons[-3:])
    if record.approval_id:
        decided = client.approve_held(
            http,
            operator,
            record.approval_id,
            actor=DEMO_OPERATOR,
            note="the drop opens in seconds; approved on the demo's screen",
        )
        state.approvals.append(
            {
                "id": decided["id"],
                "status": decided["status"],
                "decided_by": decided["decided_by"],
                "version": decided["version"],
                "changes": decided["changes"],
            }
        )
        entry["approved_version"] = decided["version"]
        state.log.append(
            f"{DEMO_OPERATOR} approved {len(decided['changes'])} held change(s) beyond the "
            f"approval band: {decided['version']}"
        )
    _read_fit(refitter.store, state)


def _read_fit(store: Any, state: DemoState) -> None:
    """Each SKU's elasticity as published with its live surface (what the engine priced on)."""
    for s in state.skus.values():
        live = store.live_surfaces(s.sku).get(s.market)
        if live is None or not live[1].elasticity:
            continue
        fitted = live[1].elasticity
        s.elasticity = fitted.get("beta")
        s.elasticity_se = (
            fitted.get("se") if fitted.get("se") is not None else fitted.get("beta_se")
        )
        s.elasticity_replaced = bool((live[1].explain or {}).get("elasticity_replaced"))


def _wait_until(
    when: datetime, state: DemoState, notify: Callable[[DemoState], None], label: str
) -> None:
    while (left := (when - datetime.now(UTC)).total_seconds()) > 0:
        state.phase = f"{label} {left:.0f} s"
        state.seconds_left = left
        notify(state)
        time.sleep(min(0.25, left))


def _trade(
    http: Any,
    pos: Mapping[str, str],
    state: DemoState,
    rng: np.random.Generator,
    closes: datetime,
    tick_s: float,
    clock: ShopClock,
    bound: Callable[[SkuState], str | None],
    notify: Callable[[DemoState], None],
) -> None:
    """POS traffic until ``closes``: price every SKU, sell what the shoppers buy."""
    last_intensity = 0.0
    last = time.monotonic()
    serial = 0
    state.ticks.append(0)
    while (left := (closes - datetime.now(UTC)).total_seconds()) > 0:
        state.phase = f"window {state.window + 1} of {state.windows} open"
        state.seconds_left = left
        quotes = client.read_prices(http, pos, state, bound)
        state.lookups += len(quotes)
        state.ticks[-1] += 1
        mono = time.monotonic()
        shop_h = clock.shop_hours(max(mono - last, 1e-3))
        last = mono
        intensity = announcement_index(datetime.now(UTC), state.truth_announcements)
        sales: list[dict[str, Any]] = []
        for s in state.skus.values():
            log = s.window(state.window)
            log.served.append(Served(s.units_left, s.price, s.bound_by))
            u = float(np.clip(rng.random(), 1e-12, 1 - 1e-12))
            # Same shoppers for both: the Poisson quantile of one uniform draw.
            wanted = int(stats.poisson.ppf(u, _rate(s, s.price, intensity) * shop_h))
            fixed = int(stats.poisson.ppf(u, _rate(s, s.list_price, intensity) * shop_h))
            fixed = min(fixed, s.fixed_left)
            s.fixed_left -= fixed
            s.fixed_units += fixed
            s.fixed_revenue += fixed * s.list_price
            log.fixed_units += fixed
            log.fixed_revenue += fixed * s.list_price
            if wanted and (s.units_left or 0) > 0:
                serial += 1
                sales.append(
                    {
                        "event_id": f"demo-sale-{state.window}-{serial}-{uuid.uuid4().hex[:8]}",
                        "type": "sale",
                        "ts": datetime.now(UTC).isoformat(),
                        "sku": s.sku,
                        "market": s.market,
                        "quantity": min(wanted, int(s.units_left or 0)),
                        "unit_price": s.price,
                        "quote_id": quotes[s.sku]["quote_id"],
                    }
                )
        if sales:
            _sell(http, pos, state, sales)
        if mono - last_intensity > 2.0:
            client.read_intensity(http, pos, state)
            last_intensity = mono
        notify(state)
        time.sleep(max(0.0, min(tick_s - (time.monotonic() - mono), left)))


def _rate(s: SkuState, price: float, intensity: float) -> float:
    return true_rate(s.truth, s.rate_per_hour, s.list_price, price, intensity)


def _sell(http: Any, pos: Mapping[str, str], state: DemoState, sales: list[dict[str, Any]]) -> None:
    state.sale_events += len(sales)
    for res in client.post_events(http, pos, sales, state):
        event = sales[res["index"]]
        s = state.skus[event["sku"]]
        if res["status"] == "accepted":
            units = int(event["quantity"])
            charged = float(res["charged_price"])
            s.units_sold += units
            s.revenue += units * charged
            s.sales.append((units, charged))
            s.units_left = res["inventory"]
            log = s.window(state.window)
            log.units_sold += units
            log.revenue += units * charged
        else:
            s.refused += 1
