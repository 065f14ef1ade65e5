"""Point-of-sale terminals during a drop, for locust.

Each simulated user is one checkout terminal in one store (market). It does what a
POS integration does at a drop, weighted like real traffic:

=========  ======  ==========================================================
task       weight  request
=========  ======  ==========================================================
price        14    ``GET /v1/prices/{sku}?market=M`` (scan one item)
basket        4    ``POST /v1/prices:batch`` with 2-6 items (scan a basket)
sale          2    ``POST /v1/events`` with one ``sale`` carrying the
                   ``quote_id`` and price the terminal was quoted
=========  ======  ==========================================================

plus, for a small fraction of accepted sales (``--replay-frac``, 2 %), the same
sale sent again, as a POS does after a lost response: it must come back
``duplicate`` and change nothing.

SKUs are picked Zipf-like (``--zipf-s``): the head of the drop takes most scans
and sells out, the tail never does. Every body is validated (``catch_response``):
a price answer must name the SKU and market asked for, carry a positive price, a
non-negative inventory, a ``quote_id`` and ``source`` ``surface`` or ``base``
(``stale`` means the service lost Redis: a failure in a pre-drop test). Dynamic
URLs are grouped with ``name=`` so the report has one row per route.

Every sale's outcome goes to a ledger (``ledger-<pid>.jsonl`` under
``--ledger-dir``), with the count of answers per route and status class; the
books checker (:mod:`loadtests.books`) reconciles it with the inventory and the
events stream after the run.

Run it (``dropprice loadtest`` does all of this, seeds its own drop and prints the
verdict)::

    DROPPRICE_SHAPE=rush locust -f loadtests/locustfile.py --headless \\
        --host http://127.0.0.1:8000 --users 40 --run-time 60s \\
        --manifest report/manifest.json --csv report/locust --html report/locust.html

or against SKUs a running service already sells::

    locust -f loadtests/locustfile.py --headless --host http://127.0.0.1:8000 \\
        --users 10 --spawn-rate 10 --run-time 30s \\
        --api-key "$DROPPRICE_API_KEY" --skus CMX-VAR-001,CMX-PIN-001 \\
        --markets brooklyn-panel-page --ledger-dir /tmp/ledger

``DROPPRICE_SHAPE`` picks the load shape: ``rush`` (:class:`~loadtests.shapes.DropRushShape`),
``soak`` (:class:`~loadtests.shapes.SoakShape`) or unset (plain ``--users`` /
``--spawn-rate`` / ``--run-time``).
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import random
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from locust import FastHttpUser, events, task

from loadtests import shapes
from loadtests.drop import Manifest, zipf_weights

PRICE_FIELDS = frozenset(
    {
        "sku",
        "market",
        "price",
        "currency",
        "version",
        "inventory",
        "source",
        "quote_id",
        "expires_at",
    }
)
SOURCES_OK = frozenset({"surface", "base"})
SALE_OK = frozenset({"accepted", "sold_out"})
QUOTE_MAX_AGE_S = 60.0  # well inside the default 120 s quote lock

# Bind exactly one shape class at module level: locust uses every concrete
# LoadTestShape it finds in the locustfile.
_shape_name = os.environ.get("DROPPRICE_SHAPE", "").strip().lower()
if _shape_name:
    if _shape_name not in shapes.SHAPES:
        raise SystemExit(
            f"DROPPRICE_SHAPE must be one of {sorted(shapes.SHAPES)} or empty, got {_shape_name!r}"
        )
    LoadShape = shapes.SHAPES[_shape_name]


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument(
        "--manifest",
        default=None,
        env_var="DROPPRICE_LOADTEST_MANIFEST",
        help="JSON manifest written by `dropprice loadtest` (SKUs, markets, key)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        env_var="DROPPRICE_API_KEY",
        is_secret=True,
        help="X-API-Key sent with every request (role pos)",
    )
    parser.add_argument(
        "--skus", default=None, help="comma-separated SKUs, most popular first (without --manifest)"
    )
    parser.add_argument(
        "--markets",
        default=None,
        help="comma-separated markets, busiest first (without --manifest)",
    )
    parser.add_argument(
        "--ledger-dir", default=None, help="folder for the sales ledger (without --manifest)"
    )
    parser.add_argument(
        "--zipf-s", type=float, default=None, help="Zipf exponent of SKU popularity (default 1.1)"
    )
    parser.add_argument(
        "--think-min",
        type=float,
        default=0.05,
        help="shortest pause between a terminal's requests, seconds",
    )
    parser.add_argument(
        "--think-max",
        type=float,
        default=0.5,
        help="longest pause between a terminal's requests, seconds",
    )
    parser.add_argument(
        "--replay-frac",
        type=float,
        default=0.02,
        help="fraction of accepted sales sent again (must be `duplicate`)",
    )
    parser.add_argument(
        "--rush-multiple", type=float, default=10.0, help="rush: peak users over baseline users"
    )
    parser.add_argument(
        "--rush-ramp-s",
        type=float,
        default=5.0,
        help="rush: seconds from baseline to peak when the drop opens",
    )
    parser.add_argument(
        "--rush-idle-frac",
        type=float,
        default=0.2,
        help="rush: share of the run at the baseline before the drop opens",
    )
    parser.add_argument(
        "--rush-decay-frac",
        type=float,
        default=0.25,
        help="rush: share of the run spent draining back to baseline",
    )


class Catalog:
    """The SKUs and markets of the run, with their popularity (cumulative weights)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.skus = manifest.skus
        self.markets = manifest.markets
        self._sku_cum = list(itertools.accumulate(zipf_weights(len(self.skus), manifest.zipf_s)))
        self._market_cum = list(
            itertools.accumulate(zipf_weights(len(self.markets), manifest.market_zipf_s))
        )

    @staticmethod
    def _pick(items: tuple[str, ...], cum: list[float], rng: random.Random) -> str:
        return items[min(bisect.bisect_left(cum, rng.random() * cum[-1]), len(items) - 1)]

    def sku(self, rng: random.Random) -> str:
        return self._pick(self.skus, self._sku_cum, rng)

    def market(self, rng: random.Random) -> str:
        return self._pick(self.markets, self._market_cum, rng)

    @classmethod
    def from_options(cls, options: Any) -> Catalog:
        if options.manifest:
            manifest = Manifest.load(Path(options.manifest))
        else:
            if not (options.skus and options.markets and options.ledger_dir):
                raise SystemExit(
                    "pass --manifest FILE, or all of --skus, --markets and --ledger-dir "
                    f"(got skus={options.skus!r} markets={options.markets!r} "
                    f"ledger_dir={options.ledger_dir!r})"
                )
            manifest = Manifest(
                run_id=uuid.uuid4().hex[:8],
                api_key=options.api_key or "",
                skus=tuple(s.strip() for s in options.skus.split(",") if s.strip()),
                markets=tuple(m.strip() for m in options.markets.split(",") if m.strip()),
                ledger_dir=options.ledger_dir,
            )
        if options.api_key:
            manifest = manifest._replace(api_key=options.api_key)
        if options.zipf_s is not None:
            manifest = manifest._replace(zipf_s=options.zipf_s)
        return cls(manifest)


class Ledger:
    """What this locust process saw: every sale's outcome and answers per route."""

    def __init__(self) -> None:
        self.sales: list[dict[str, Any]] = []
        self.status: Counter[tuple[str, str]] = Counter()
        self.stale = 0
        self.written = False

    def write(self, ledger_dir: str) -> Path:
        folder = Path(ledger_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"ledger-{os.getpid()}.jsonl"
        with path.open("w") as out:
            for sale in self.sales:
                out.write(json.dumps(sale) + "\n")
            out.write(
                json.dumps(
                    {
                        "kind": "summary",
                        "status": [
                            [name, code, n] for (name, code), n in sorted(self.status.items())
                        ],
                        "stale": self.stale,
                    }
                )
                + "\n"
            )
        self.written = True
        return path


CATALOG: Catalog | None = None
LEDGER = Ledger()
OPTIONS: Any = None


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    global CATALOG, OPTIONS
    OPTIONS = environment.parsed_options
    CATALOG = Catalog.from_options(OPTIONS)


@events.request.add_listener
def _on_request(name: str, response: Any = None, exception: Any = None, **_: Any) -> None:
    code = getattr(response, "status_code", 0) or 0
    LEDGER.status[(name, f"{code // 100}xx" if code else "conn")] += 1


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_: Any) -> None:
    if CATALOG is not None and not LEDGER.written:
        LEDGER.write(CATALOG.manifest.ledger_dir)


def _http_problem(resp: Any) -> str:
    """A failure message for a non-200 answer (or no answer at all)."""
    if not resp.status_code:
        return f"no answer: {resp.error!r}"
    return f"HTTP {resp.status_code}: {(resp.text or '')[:120]}"


def _check_price(body: Any, sku: str, market: str) -> str | None:
    """Why a price answer is wrong, or ``None`` when it is a valid answer for (sku, market)."""
    if not isinstance(body, dict):
        return f"price body is not an object: {str(body)[:80]}"
    missing = PRICE_FIELDS - set(body)
    if missing:
        return f"price body misses {sorted(missing)}"
    if body["sku"] != sku or body["market"] != market:
        return f"asked {sku}/{market}, answered {body['sku']}/{body['market']}"
    price = body["price"]
    if not isinstance(price, int | float) or not price > 0:
        return f"price must be a positive number, got {price!r}"
    inventory = body["inventory"]
    if not isinstance(inventory, int) or inventory < 0:
        return f"inventory must be an integer >= 0, got {inventory!r}"
    if not body["quote_id"]:
        return "empty quote_id"
    if body["source"] not in SOURCES_OK:
        if body["source"] == "stale":
            LEDGER.stale += 1
        return f"source {body['source']!r} (healthy service answers {sorted(SOURCES_OK)})"
    return None


class PosTerminal(FastHttpUser):
    """One checkout terminal in one store during a drop."""

    network_timeout = 10.0
    connection_timeout = 5.0

    def wait_time(self) -> float:
        lo = float(getattr(OPTIONS, "think_min", 0.05))
        hi = float(getattr(OPTIONS, "think_max", 0.5))
        return self.rng.uniform(lo, max(lo, hi))

    def on_start(self) -> None:
        assert CATALOG is not None, "test_start did not run"
        self.catalog = CATALOG
        self.rng = random.Random(uuid.uuid4().int)
        self.market = self.catalog.market(self.rng)
        self.headers = {"X-API-Key": self.catalog.manifest.api_key}
        # sku -> (quote_id, price, when quoted), in this terminal's market
        self.quotes: dict[str, tuple[str, float, float]] = {}
        self.prefix = f"lt{self.catalog.manifest.run_id}"

    def _remember(self, body: dict[str, Any]) -> None:
        if body.get("inventory", 0) > 0:
            self.quotes[body["sku"]] = (body["quote_id"], float(body["price"]), time.monotonic())
        else:
            self.quotes.pop(body["sku"], None)

    @task(14)
    def price(self) -> None:
        sku = self.catalog.sku(self.rng)
        with self.client.get(
            f"/v1/prices/{sku}?market={self.market}",
            name="/v1/prices/[sku]",
            headers=self.headers,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_http_problem(resp))
                return
            body = resp.json()
            problem = _check_price(body, sku, self.market)
            if problem:
                resp.failure(problem)
                return
            self._remember(body)
            resp.success()

    @task(4)
    def basket(self) -> None:
        items = [self.catalog.sku(self.rng) for _ in range(self.rng.randint(2, 6))]
        payload = {"items": [{"sku": s, "market": self.market} for s in items]}
        with self.client.post(
            "/v1/prices:batch",
            name="/v1/prices:batch",
            json=payload,
            headers=self.headers,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_http_problem(resp))
                return
            body = resp.json()
            prices = body.get("prices") if isinstance(body, dict) else None
            if not isinstance(prices, list) or len(prices) != len(items):
                resp.failure(f"expected {len(items)} prices in order, got {str(body)[:120]}")
                return
            for sku, item in zip(items, prices, strict=True):
                problem = _check_price(item, sku, self.market)
                if problem:
                    resp.failure(f"item {sku}: {problem}")
                    return
                self._remember(item)
            resp.success()

    @task(2)
    def sale(self) -> None:
        now = time.monotonic()
        fresh = [(sku, q) for sku, q in self.quotes.items() if now - q[2] < QUOTE_MAX_AGE_S]
        if not fresh:
            self.price()  # a checkout always scans before it sells
            return
        sku, (quote_id, unit_price, _) = self.rng.choice(fresh)
        del self.quotes[sku]
        event = {
            "type": "sale",
            "event_id": f"{self.prefix}-{uuid.uuid4().hex}",
            "ts": datetime.now(UTC).isoformat(),
            "sku": sku,
            "market": self.market,
            "quantity": 1 if self.rng.random() < 0.85 else 2,
            "unit_price": unit_price,
            "quote_id": quote_id,
        }
        status = self._post_sale(event, "/v1/events", SALE_OK)
        if status is None:
            return
        LEDGER.sales.append(
            {
                "event_id": event["event_id"],
                "sku": sku,
                "market": self.market,
                "quantity": event["quantity"],
                "status": status,
                "unit_price": unit_price,
            }
        )
        if status == "accepted" and self.rng.random() < float(
            getattr(OPTIONS, "replay_frac", 0.02)
        ):
            replay = self._post_sale(event, "/v1/events [replay]", frozenset({"duplicate"}))
            if replay is not None:
                LEDGER.sales.append(
                    {
                        "event_id": event["event_id"],
                        "sku": sku,
                        "market": self.market,
                        "quantity": event["quantity"],
                        "status": replay,
                        "replay": True,
                    }
                )

    def _post_sale(self, event: dict[str, Any], name: str, allowed: frozenset[str]) -> str | None:
        """Send one sale; return its per-event status, or ``None`` when the answer was wrong."""
        with self.client.post(
            "/v1/events",
            name=name,
            json={"events": [event]},
            headers=self.headers,
            catch_response=True,
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_http_problem(resp))
                # A lost answer may still have sold: record it so the books can tell.
                LEDGER.sales.append(
                    {
                        "event_id": event["event_id"],
                        "sku": event["sku"],
                        "market": event["market"],
                        "quantity": event["quantity"],
                        "status": f"http_{resp.status_code}",
                    }
                )
                return None
            body = resp.json()
            results = body.get("results") if isinstance(body, dict) else None
            if (
                not isinstance(results, list)
                or len(results) != 1
                or not isinstance(results[0], dict)
            ):
                resp.failure(f"expected one per-event result, got {str(body)[:120]}")
                return None
            result = results[0]
            status = str(result.get("status", ""))
            if result.get("event_id", event["event_id"]) != event["event_id"]:
                resp.failure(f"result names event {result.get('event_id')!r}")
                return None
            if status not in allowed:
                resp.failure(
                    f"sale answered {status!r}, expected one of {sorted(allowed)}: "
                    f"{str(result)[:120]}"
                )
                return None
            if status == "accepted" and event.get("quote_id"):
                # The quote locks the price: a sale carrying it is charged the quoted price.
                if result.get("quote") == "expired":
                    resp.failure(f"quote expired within {QUOTE_MAX_AGE_S:g}s of being given")
                    return None
                charged = result.get("charged_price")
                if charged is not None and abs(float(charged) - event["unit_price"]) > 0.005:
                    resp.failure(
                        f"quoted {event['unit_price']} but charged {charged} "
                        f"(quote {result.get('quote')!r})"
                    )
                    return None
            resp.success()
            return status
