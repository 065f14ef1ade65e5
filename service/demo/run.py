"""``dropprice demo``: a compressed creator drop priced live by the real service.

What runs, all real parts:

1. a private ``redis-server`` (:class:`service.embedded.RedisServer`, temporary data);
2. the demo drop: the three SKUs of ``configs/drops/comic-shop-creator-drop.yaml`` (list
   prices, costs, stock, floors, ceilings, the signed copy's ladder) with its selling
   windows moved to *now* and shortened to seconds (see "Time" below);
3. the price service (:func:`service.app.create_app`) under uvicorn on a free local
   port, with a ``pos`` and an ``operator`` API key;
4. the shop's recent history: a day of hourly sales at its past test prices and a
   creator announcement the evening before, sent back-dated through
   ``POST /v1/events`` (with a restock ahead of them, so the drop opens with the
   config's stock);
5. a re-fit through :class:`service.refit.Refitter` (panel, intensity, JAX fit,
   DP surfaces, guardrails, validation, publish) before the first window and
   between windows; once the first one has published (it compiles the model), the
   drop opens: its windows are moved to start now with ``PUT /v1/drops/{id}``, as an
   operator would;
6. simulated POS terminals: every tick they price the drop's SKUs with
   ``POST /v1/prices:batch`` (each answer carries a ``quote_id``) and sell what the
   shoppers buy with ``POST /v1/events`` (the sale carries the quote, so it is charged
   the quoted price); before the second window the creator announces again.

Ground truth. Shoppers follow the simulator's demand model (:mod:`pricing.scenario`):

.. math:: \\lambda(p) = r \\, e^{\\gamma I} \\, (p / p_{list})^{\\beta + \\delta I}

per hour, with ``I`` the announcements' index (size times ``2^{-age/half-life}``). The
engine never sees ``β``, ``γ`` or ``δ``; it learns them from the events it is sent.
Units sold in a tick are the Poisson quantile of one uniform draw per SKU and tick;
the fixed-price counterfactual (every SKU at its list price all drop long) uses the
same draws (common random numbers), so the comparison is shopper for shopper.

Time. The service prices by wall-clock time and learns from an hourly panel, so the
demo does not fake a clock: the windows are real, a few seconds long, and demand is
scaled so that the stock can sell out in them (a rush). The history uses the same
hourly rates, so the fitted demand level matches the rush. With one-minute periods a
window of a few seconds is one period: within a window the price moves with the
units left (the surface's inventory axis), between windows with each re-fit.

Example:
    >>> summary = run_demo(DemoOptions(duration_s=30.0))  # doctest: +SKIP
    >>> summary["revenue"], summary["fixed_price"]["revenue"]  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

__all__ = [
    "DEMO_DROP",
    "DemoOptions",
    "DemoState",
    "SkuTruth",
    "TRUTH",
    "default_config_dir",
    "run_demo",
]

DEMO_DROP = "comic-shop-creator-drop"
"""The example drop the demo prices (``configs/drops/<id>.yaml``)."""


@dataclass(frozen=True)
class SkuTruth:
    """Ground-truth demand of one SKU (the scenario model's parameters)."""

    elasticity: float
    """β: own-price elasticity at intensity 0."""
    intensity_lift: float
    """γ: log-demand lift per unit of intensity."""
    intensity_elasticity: float
    """δ: change of the elasticity per unit of intensity."""
    sell_share: float
    """Share of the stock that sells over the drop at the list price, intensity 0."""


TRUTH: Mapping[str, SkuTruth] = {
    # The artist variant: fans compare it with the regular cover (elastic), stock is tight.
    "CMX-VAR-001": SkuTruth(-1.4, 0.35, 0.15, 0.8),
    # The signed sketch variant: scarce, inelastic, sold on a four-step ladder.
    "CMX-VAR-002": SkuTruth(-0.8, 0.45, 0.10, 0.8),
    # The enamel pin: an impulse buy (elastic).
    "CMX-PIN-001": SkuTruth(-2.2, 0.20, 0.0, 0.6),
}
"""True demand of the demo drop's SKUs."""

_MAX_UNITS = 100_000
"""Most units one event may carry (the events API's limit)."""

ANNOUNCEMENT_HALF_LIFE_H = 12.0
"""Half-life of an announcement's effect on demand (the index's default for announcements)."""


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


@dataclass
class SkuState:
    """What the demo knows of one SKU-market, updated as the drop runs."""

    sku: str
    market: str
    name: str
    list_price: float
    truth: SkuTruth
    rate_per_hour: float
    price: float = 0.0
    source: str = "base"
    version: str | None = None
    units_left: int | None = None
    initial_inventory: int | None = None
    units_sold: int = 0
    revenue: float = 0.0
    sales: list[tuple[int, float]] = field(default_factory=list)
    prices_served: list[float] = field(default_factory=list)
    refused: int = 0
    intensity: float | None = None
    elasticity: float | None = None
    elasticity_se: float | None = None
    elasticity_replaced: bool = False
    fixed_left: int = 0
    fixed_units: int = 0
    fixed_revenue: float = 0.0


@dataclass
class DemoState:
    """The whole demo's state, handed to the display after every tick."""

    drop_id: str
    market: str
    phase: str = "starting"
    window: int = -1
    windows: int = 0
    seconds_left: float = 0.0
    skus: dict[str, SkuState] = field(default_factory=dict)
    refits: list[dict[str, Any]] = field(default_factory=list)
    announcements: list[dict[str, Any]] = field(default_factory=list)
    truth_announcements: list[dict[str, Any]] = field(default_factory=list)
    """``{"ts": datetime, "size": float}`` of every announcement, for the true demand."""
    log: list[str] = field(default_factory=list)
    lookups: int = 0
    sale_events: int = 0
    ticks: list[int] = field(default_factory=list)


def default_config_dir() -> Path:
    """The repository's ``configs/`` folder (next to the ``service`` package)."""
    return Path(__file__).resolve().parents[1] / "configs"


# ------------------------------------------------------------------ ground truth
def announcement_index(at: datetime, announcements: list[dict[str, Any]]) -> float:
    """The truth's intensity: Σ size · 2^(−age / half-life) over past announcements."""
    total = 0.0
    for a in announcements:
        age_h = (at - a["ts"]).total_seconds() / 3600.0
        if age_h >= 0:
            total += a["size"] * 2.0 ** (-age_h / ANNOUNCEMENT_HALF_LIFE_H)
    return total


def true_rate(s: SkuState, price: float, intensity: float) -> float:
    """Expected units per hour at ``price`` (the scenario model's formula)."""
    t = s.truth
    beta = t.elasticity + t.intensity_elasticity * intensity
    lift = math.exp(t.intensity_lift * intensity)
    return float(s.rate_per_hour * lift * (price / s.list_price) ** beta)


# ------------------------------------------------------------------ configs
def write_demo_configs(
    source: Path, target: Path, *, windows: list[tuple[datetime, datetime]]
) -> dict[str, Any]:
    """Copy ``source`` configs to ``target`` with the demo drop's windows set to ``windows``.

    The demo drop keeps its SKUs, stock, costs and guardrails; its windows become the
    given ones with one-minute periods, the opening no-touch hold and the cap on
    changes per window are lifted (a window lasts seconds) and the approval band is
    widened to 250 % (nobody is there to approve).

    Returns:
        The demo drop as a dict (as written).
    """
    from service.config.loader import load_config_dir

    drop_file = source / "drops" / f"{DEMO_DROP}.yaml"
    if not drop_file.is_file():
        raise FileNotFoundError(f"the demo drop is missing: expected {drop_file}")
    (target / "drops").mkdir(parents=True, exist_ok=True)
    for name in ("defaults.yaml", "categories.yaml"):
        shutil.copyfile(source / name, target / name)
    drop: dict[str, Any] = yaml.safe_load(drop_file.read_text())
    drop["windows"] = [{"start": a.isoformat(), "end": b.isoformat()} for a, b in windows]
    drop["period_minutes"] = 1
    drop["refit_during_window"] = True
    rails = dict(drop.get("guardrails") or {})
    rails.pop("max_changes_per_window", None)
    rails["no_touch_minutes"] = 0
    rails["approval_band_pct"] = 250
    drop["guardrails"] = rails
    (target / "drops" / f"{DEMO_DROP}.yaml").write_text(yaml.safe_dump(drop, sort_keys=False))
    load_config_dir(target)  # fail here, naming the field, rather than in the service
    return drop


# ------------------------------------------------------------------ service
@contextlib.contextmanager
def running_service(settings: Any, port: int) -> Iterator[str]:
    """The price service under uvicorn in a thread; yields its base URL."""
    import uvicorn

    from service.app import create_app

    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dropprice-demo-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the demo's price service did not start (see the log above)")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


class _Recorder:
    """Re-fit progress reporter that keeps the stage timings for the summary."""

    def __init__(self, on_stage: Callable[[str], None]) -> None:
        self.on_stage = on_stage

    def stage_started(self, name: str) -> None:
        self.on_stage(name)

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        pass

    def note(self, message: str, **fields: Any) -> None:
        pass


# ------------------------------------------------------------------ the run
def run_demo(
    options: DemoOptions, *, on_update: Callable[[DemoState], None] | None = None
) -> dict[str, Any]:
    """Run the demo drop end to end and return its summary (JSON-ready).

    Args:
        options: duration, windows, seed, configs.
        on_update: called with the :class:`DemoState` after every tick and stage
            (the live table).

    Returns:
        ``{"drop", "market", "windows", "duration_s", "skus": [...], "refits": [...],
        "revenue", "units_sold", "fixed_price": {...}, "uplift_pct", "prices_moved",
        "books_balanced", "seconds"}``; each SKU entry lists its accepted sales as
        ``[units, charged unit price]`` pairs, so the books can be checked from it.
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
    now = datetime.now(UTC)
    windows = schedule(now + timedelta(minutes=30), n_win, window_s, gap_s)
    drop = write_demo_configs(source, workdir / "configs", windows=windows)
    market = drop["markets"][0]
    state = DemoState(drop_id=drop["id"], market=market, windows=n_win)
    open_hours = n_win * window_s / 3600.0
    for sku in drop["skus"]:
        truth = TRUTH.get(sku["sku"], SkuTruth(-1.5, 0.3, 0.0, 0.5))
        stock = int(sku["inventory"][market])
        state.skus[sku["sku"]] = SkuState(
            sku=sku["sku"],
            market=market,
            name=sku.get("name", ""),
            list_price=float(sku["list_price"]),
            truth=truth,
            rate_per_hour=truth.sell_share * stock / open_hours,
            price=float(sku["list_price"]),
            fixed_left=stock,
        )
    pos_key, operator_key = uuid.uuid4().hex, uuid.uuid4().hex
    redis = RedisServer(data_dir=workdir / "redis", appendonly=False, die_with_parent=True)
    try:
        redis.start()
        settings = Settings(
            redis_url=redis.url,
            config_dir=workdir / "configs",
            api_keys={hash_api_key(pos_key): Role.pos, hash_api_key(operator_key): Role.operator},
            log_level="WARNING",
            access_log=False,
            rate_limit_enabled=False,
            redis_timeout_ms=2000,
            resync_interval_s=1.0,
            intensity_cache_s=1.0,
        )
        store = PriceStore(connect(redis.url, timeout=30.0))
        # The demo's files seed its empty Redis, as `dropprice worker --config-dir` does;
        # from then on the service and the re-fits read the live version there.
        live = live_config(store.client, workdir / "configs", actor="dropprice-demo")
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
                reporter=_Recorder(lambda name: _phase(state, f"re-fit: {name}", notify)),
            )
            _send_history(http, operator, state, rng, now, options.history_hours)
            _refit(refitter, state, notify, started)
            windows = schedule(datetime.now(UTC) + timedelta(seconds=1.0), n_win, window_s, gap_s)
            _open_drop(http, operator, source, workdir / "configs", windows)
            live = ConfigStore(store.client).live() or live  # the version the PUT made live
            refitter.bundle, refitter.config_version = live.bundle, live.version
            _read_prices(http, pos, state)
            for s in state.skus.values():
                s.initial_inventory = s.units_left
            for k, (opens, closes) in enumerate(windows):
                state.window = k
                if k == 1:
                    _announce(http, pos, state, size=2.0, reach=250_000)
                _wait_until(opens, state, notify, f"window {k + 1} opens in")
                _trade(http, pos, state, rng, closes, options.tick_s, notify)
                if k + 1 < n_win:
                    _refit(refitter, state, notify, started)
            _phase(state, "closing the books", notify)
            _read_prices(http, pos, state)
            _read_intensity(http, pos, state)
        store.client.close()
    finally:
        redis.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    state.phase = "done"
    notify(state)
    return _summary(state, options, time.monotonic() - started)


def schedule(
    first: datetime, n: int, window_s: float, gap_s: float
) -> list[tuple[datetime, datetime]]:
    """``n`` windows of ``window_s`` seconds from ``first``, ``gap_s`` apart."""
    step = window_s + gap_s
    return [
        (first + timedelta(seconds=k * step), first + timedelta(seconds=k * step + window_s))
        for k in range(n)
    ]


def _open_drop(
    http: Any,
    headers: Mapping[str, str],
    source: Path,
    target: Path,
    windows: list[tuple[datetime, datetime]],
) -> None:
    """Move the drop's windows to ``windows`` with ``PUT /v1/drops/{id}``, as an operator
    would: a new live config version, which the service and the next re-fit run on."""
    drop = write_demo_configs(source, target, windows=windows)
    r = http.put(
        f"/v1/drops/{drop['id']}",
        content=yaml.safe_dump(drop, sort_keys=False),
        headers={**headers, "Content-Type": "application/yaml", "X-Actor": "dropprice-demo"},
        params={"note": "demo: the drop opens now"},
    )
    if r.status_code >= 300:
        raise RuntimeError(f"the service refused the demo drop ({r.status_code}): {r.text}")


def _phase(state: DemoState, phase: str, notify: Callable[[DemoState], None]) -> None:
    state.phase = phase
    notify(state)


def _post_events(http: Any, headers: Mapping[str, str], events: list[dict[str, Any]]) -> list[Any]:
    results: list[Any] = []
    for i in range(0, len(events), 1000):
        chunk = {"events": events[i : i + 1000]}
        r = _retrying(partial(http.post, "/v1/events", json=chunk, headers=headers))
        results += r.json()["results"]
    return results


def _retrying(call: Callable[[], Any], attempts: int = 5) -> Any:
    """A POS client's retry: 5xx and transport errors are retried with backoff (events
    are idempotent by ``event_id``, so a retried batch never double-counts)."""
    import httpx

    for attempt in range(attempts):
        try:
            r = call()
        except httpx.TransportError:
            if attempt == attempts - 1:
                raise
        else:
            if r.status_code < 500 or attempt == attempts - 1:
                r.raise_for_status()
                return r
        time.sleep(0.1 * 2**attempt)
    raise RuntimeError("unreachable")


def _send_history(
    http: Any,
    headers: Mapping[str, str],
    state: DemoState,
    rng: np.random.Generator,
    now: datetime,
    hours: int,
) -> None:
    """Back-dated hourly sales at the shop's past test prices, and last night's announcement.

    A restock of exactly the units these sales take comes first, so the drop still
    opens with the config's stock.
    """
    _phase(state, "sending the shop's history", lambda _s: None)
    start = (now - timedelta(hours=hours)).replace(minute=0, second=0, microsecond=0)
    announced = now - timedelta(hours=hours // 2)
    past = state.truth_announcements
    past.append({"ts": announced, "size": 1.5})
    state.announcements.append({"ts": announced.isoformat(), "size": 1.5, "history": True})
    steps = np.array([0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4])
    events: list[dict[str, Any]] = []
    restock: dict[str, int] = {}
    for s in state.skus.values():
        sold_total = 0
        for h in range(hours):
            ts = start + timedelta(hours=h, minutes=30)
            price = round(s.list_price * float(rng.choice(steps)), 2)
            units = int(rng.poisson(true_rate(s, price, announcement_index(ts, past))))
            sold_total += units
            for part in range(math.ceil(units / _MAX_UNITS)):
                events.append(
                    {
                        "event_id": f"hist-{s.sku}-{h}-{part}",
                        "type": "sale",
                        "ts": ts.isoformat(),
                        "sku": s.sku,
                        "market": s.market,
                        "quantity": min(_MAX_UNITS, units - part * _MAX_UNITS),
                        "unit_price": price,
                    }
                )
        restock[s.sku] = sold_total
    head = [
        {
            "event_id": f"hist-restock-{sku}-{part}",
            "type": "restock",
            "ts": (start - timedelta(minutes=1)).isoformat(),
            "sku": sku,
            "market": state.market,
            "quantity": min(_MAX_UNITS, units - part * _MAX_UNITS),
        }
        for sku, units in restock.items()
        for part in range(math.ceil(units / _MAX_UNITS))
    ]
    head.append(
        {
            "event_id": "hist-announcement",
            "type": "announcement",
            "ts": announced.isoformat(),
            "sku": list(state.skus),
            "market": state.market,
            "reach": 120_000,
            "creator": "the artist",
        }
    )
    results = _post_events(http, headers, head + sorted(events, key=lambda e: e["ts"]))
    bad = [r for r in results if r["status"] not in ("accepted", "duplicate")]
    if bad:
        raise RuntimeError(f"the service refused history events: {bad[:3]}")


def _announce(
    http: Any, headers: Mapping[str, str], state: DemoState, *, size: float, reach: int
) -> None:
    ts = datetime.now(UTC)
    _post_events(
        http,
        headers,
        [
            {
                "event_id": f"demo-announcement-{len(state.announcements)}",
                "type": "announcement",
                "ts": ts.isoformat(),
                "sku": list(state.skus),
                "market": state.market,
                "reach": reach,
                "creator": "the artist",
            }
        ],
    )
    state.truth_announcements.append({"ts": ts, "size": size})
    state.announcements.append({"ts": ts.isoformat(), "size": size, "reach": reach})
    state.log.append(f"{ts:%H:%M:%S} the artist announces the signing to {reach:,} followers")


def _refit(
    refitter: Any,
    state: DemoState,
    notify: Callable[[DemoState], None],
    started: float,
) -> None:
    _phase(state, "re-fit", notify)
    t0 = time.monotonic()
    record = refitter.run(trigger="demo", force=True, allow_during_window=True)
    seconds = time.monotonic() - t0
    state.refits.append(
        {
            "id": record.id,
            "state": record.state,
            "version": record.version,
            "seconds": round(seconds, 3),
            "events_read": record.events_read,
            "stages": record.timings,
            "reasons": list(record.reasons),
            "at_s": round(time.monotonic() - started, 3),
        }
    )
    state.log.append(
        f"re-fit {record.state} {record.version or ''} in {seconds:.1f} s "
        f"({record.events_read} events)"
    )
    if record.state == "failed":
        raise RuntimeError(f"the demo's re-fit failed: {record.reasons}")
    state.log.extend(record.reasons[-3:])
    _read_fit(refitter.store, state)


def _read_prices(http: Any, headers: Mapping[str, str], state: DemoState) -> dict[str, Any]:
    items = [{"sku": s.sku, "market": s.market} for s in state.skus.values()]
    r = _retrying(partial(http.post, "/v1/prices:batch", json={"items": items}, headers=headers))
    quotes: dict[str, Any] = {}
    for body in r.json()["prices"]:
        if "error" in body:
            raise RuntimeError(f"the service has no price for {body['sku']}: {body['detail']}")
        s = state.skus[body["sku"]]
        s.price, s.source, s.version = float(body["price"]), body["source"], body["version"]
        s.units_left = body["inventory"]
        quotes[s.sku] = body
    return quotes


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


def _read_intensity(http: Any, headers: Mapping[str, str], state: DemoState) -> None:
    """The micro-event index in the current hour (``GET /v1/skus/{sku}/intensity``)."""
    for s in state.skus.values():
        r = http.get(
            f"/v1/skus/{s.sku}/intensity",
            params={"market": s.market},
            headers=headers,
        )
        if r.status_code == 200:
            s.intensity = float(r.json()["current"])


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
    notify: Callable[[DemoState], None],
) -> None:
    """POS traffic until ``closes``: price every SKU, sell what the shoppers buy."""
    last_explain = 0.0
    last = time.monotonic()
    serial = 0
    state.ticks.append(0)
    while (left := (closes - datetime.now(UTC)).total_seconds()) > 0:
        state.phase = f"window {state.window + 1} of {state.windows} open"
        state.seconds_left = left
        quotes = _read_prices(http, pos, state)
        state.lookups += len(quotes)
        state.ticks[-1] += 1
        mono = time.monotonic()
        dt_h = max(mono - last, 1e-3) / 3600.0
        last = mono
        intensity = announcement_index(datetime.now(UTC), state.truth_announcements)
        sales: list[dict[str, Any]] = []
        for s in state.skus.values():
            s.prices_served.append(s.price)
            u = float(np.clip(rng.random(), 1e-12, 1 - 1e-12))
            # Same shoppers for both: the Poisson quantile of one uniform draw.
            wanted = int(stats.poisson.ppf(u, true_rate(s, s.price, intensity) * dt_h))
            fixed = int(stats.poisson.ppf(u, true_rate(s, s.list_price, intensity) * dt_h))
            fixed = min(fixed, s.fixed_left)
            s.fixed_left -= fixed
            s.fixed_units += fixed
            s.fixed_revenue += fixed * s.list_price
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
            state.sale_events += len(sales)
            for res in _post_events(http, pos, sales):
                event = sales[res["index"]]
                s = state.skus[event["sku"]]
                if res["status"] == "accepted":
                    units = int(event["quantity"])
                    charged = float(res["charged_price"])
                    s.units_sold += units
                    s.revenue += units * charged
                    s.sales.append((units, charged))
                    s.units_left = res["inventory"]
                else:
                    s.refused += 1
        if mono - last_explain > 2.0:
            _read_intensity(http, pos, state)
            last_explain = mono
        notify(state)
        time.sleep(max(0.0, min(tick_s - (time.monotonic() - mono), left)))


def _summary(state: DemoState, options: DemoOptions, seconds: float) -> dict[str, Any]:
    skus = []
    for s in state.skus.values():
        served = s.prices_served or [s.price]
        skus.append(
            {
                "sku": s.sku,
                "market": s.market,
                "name": s.name,
                "list_price": s.list_price,
                "initial_inventory": s.initial_inventory,
                "units_left": s.units_left,
                "units_sold": s.units_sold,
                "revenue": round(s.revenue, 2),
                "sales": [[u, p] for u, p in s.sales],
                "refused_sales": s.refused,
                "first_price": served[0],
                "last_price": s.price,
                "min_price": min(served),
                "max_price": max(served),
                "distinct_prices": sorted(set(served)),
                "elasticity": s.elasticity,
                "elasticity_se": s.elasticity_se,
                "elasticity_from_prior": s.elasticity_replaced,
                "true_elasticity": s.truth.elasticity,
                "intensity": s.intensity,
                "fixed_price": {"units_sold": s.fixed_units, "revenue": round(s.fixed_revenue, 2)},
            }
        )
    revenue = sum(s.revenue for s in state.skus.values())
    fixed = sum(s.fixed_revenue for s in state.skus.values())
    balanced = all(
        s.initial_inventory is not None
        and s.units_left is not None
        and s.initial_inventory - s.units_left == s.units_sold
        for s in state.skus.values()
    )
    moved = any(
        len(set(s.prices_served)) > 1 or s.prices_served[0] != s.list_price
        for s in state.skus.values()
        if s.prices_served
    )
    return {
        "drop": state.drop_id,
        "market": state.market,
        "windows": state.windows,
        "duration_s": options.duration_s,
        "seed": options.seed,
        "skus": skus,
        "refits": state.refits,
        "announcements": state.announcements,
        "revenue": round(revenue, 2),
        "units_sold": sum(s.units_sold for s in state.skus.values()),
        "fixed_price": {
            "revenue": round(fixed, 2),
            "units_sold": sum(s.fixed_units for s in state.skus.values()),
        },
        "uplift_pct": round(100.0 * (revenue - fixed) / fixed, 2) if fixed > 0 else None,
        "price_lookups": state.lookups,
        "sale_events": state.sale_events,
        "ticks_per_window": state.ticks,
        "prices_moved": moved,
        "books_balanced": balanced,
        "seconds": round(seconds, 2),
    }
