"""The operator console in a real headless Chromium against the real app and a real Redis.

The service runs under uvicorn on a free port (``service.demo.running_service``) with
the example drop (``configs/drops/comic-shop-creator-drop.yaml``, its window moved to
open in an hour); Chromium is Debian's ``chromium`` package driven by Playwright
through its executable path (``.ci/run`` installs it). Waits poll with generous
deadlines; nothing sleeps a fixed time and nothing asserts a duration.

The operator test also writes the screenshots the README shows
(``docs/console-board.png``, ``docs/console-sku.png``).
"""

from __future__ import annotations

import math
import shutil
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from service import keys
from service.auth import hash_api_key
from service.config.loader import load_config_dir
from service.config.versions import ConfigStore
from service.demo import default_config_dir, running_service, write_demo_configs
from service.embedded import RedisServer
from service.refit import Refitter
from service.settings import Role, Settings
from service.store import PriceStore, connect

POS_KEY, OPERATOR_KEY = "pos-key-console-tests-0001", "operator-key-console-tests-0001"
POS = {"X-API-Key": POS_KEY}
OPERATOR = {"X-API-Key": OPERATOR_KEY}
DROP = "comic-shop-creator-drop"
MARKET = "brooklyn-panel-page"
DOCS = Path(__file__).resolve().parents[2] / "docs"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TRUE_BETA = {"CMX-VAR-001": -2.5, "CMX-VAR-002": -0.7, "CMX-PIN-001": -1.8}
WAIT_MS = 20_000


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "Chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Console:
    """The running service, its Redis and a browser, shared by the module's tests."""

    def __init__(self, base: str, redis_url: str, config_dir: Path, browser: Any) -> None:
        self.base, self.redis_url, self.config_dir, self.browser = (
            base,
            redis_url,
            config_dir,
            browser,
        )
        self.http = httpx.Client(base_url=base, timeout=30.0)

    def page(self) -> Any:
        context = self.browser.new_context(viewport={"width": 1280, "height": 800})
        return context.new_page()

    def sign_in(self, page: Any, key: str, name: str) -> None:
        page.goto(f"{self.base}/console")
        page.fill("#login-key", key)
        page.fill("#login-name", name)
        page.click("#login-form button[type=submit]")

    def price(self, sku: str) -> dict[str, Any]:
        r = self.http.get(f"/v1/prices/{sku}", params={"market": MARKET}, headers=POS)
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    chromium = _chromium()
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("console")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    drop, _ = write_demo_configs(
        default_config_dir(),
        root / "configs",
        windows=[(now + timedelta(hours=1), now + timedelta(hours=3))],
    )
    # The demo keeps the drop's 40 % approval band, and the first re-fit moves a list
    # price by 50 % (CMX-VAR-001, 19.99 -> 9.99): widened here so that re-fit publishes
    # every SKU; the operator test then tightens the band to hold a move for approval.
    drop["guardrails"] = {**(drop.get("guardrails") or {}), "approval_band_pct": 250}
    drop_file = root / "configs" / "drops" / f"{DROP}.yaml"
    drop_file.write_text(yaml.safe_dump(drop, sort_keys=False))
    server = RedisServer(appendonly=False)
    server.start()
    settings = Settings(
        redis_url=server.url,
        config_dir=root / "configs",
        api_keys={hash_api_key(POS_KEY): Role.pos, hash_api_key(OPERATOR_KEY): Role.operator},
        redis_timeout_ms=5000,
        rate_limit_enabled=False,
        resync_interval_s=0.5,
        access_log=False,
    )
    try:
        with running_service(settings, _free_port()) as base, sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=chromium,
                headless=True,
                # Playwright gives each launch a fresh profile (its own --user-data-dir).
                args=CHROMIUM_FLAGS,
            )
            c = Console(base, server.url, root / "configs", browser)
            try:
                yield c
            finally:
                c.http.close()
                browser.close()
    finally:
        server.stop()


def _history(now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A day of back-dated sales at the shop's test prices (known elasticities), and the
    restocks (an operator's) that come first."""
    rng = np.random.default_rng(7)
    lists = {"CMX-VAR-001": 19.99, "CMX-VAR-002": 29.99, "CMX-PIN-001": 12.99}
    steps = np.array([0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.4])
    start = (now - timedelta(hours=24)).replace(minute=0)
    events = []
    for sku, list_price in lists.items():
        for h in range(24):
            price = round(list_price * float(rng.choice(steps)), 2)
            units = int(rng.poisson(6.0 * (price / list_price) ** TRUE_BETA[sku]))
            for part in range(math.ceil(units / 50)):
                events.append(
                    {
                        "event_id": f"hist-{sku}-{h}-{part}",
                        "type": "sale",
                        "ts": (start + timedelta(hours=h, minutes=30)).isoformat(),
                        "sku": sku,
                        "market": MARKET,
                        "quantity": min(50, units - part * 50),
                        "unit_price": price,
                    }
                )
    # The shop restocked what the day sold first, so the drop still opens with its stock.
    sold: dict[str, int] = {}
    for e in events:
        sold[e["sku"]] = sold.get(e["sku"], 0) + e["quantity"]
    restocks = [
        {
            "event_id": f"hist-restock-{sku}",
            "type": "restock",
            "ts": (start - timedelta(minutes=1)).isoformat(),
            "sku": sku,
            "market": MARKET,
            "quantity": units,
        }
        for sku, units in sold.items()
    ]
    return restocks, events


def _refit(console: Console, *, replay: bool) -> Any:
    """What ``dropprice worker`` does between windows: a re-fit on the live config."""
    store = PriceStore(connect(console.redis_url, timeout=30.0))
    try:
        if replay:  # the same events again: the surfaces differ only by the config change
            for sku in TRUE_BETA:
                store.client.xgroup_setid(keys.events(sku), "refit", "0")
        for sku, units in {"CMX-VAR-001": 120, "CMX-VAR-002": 40, "CMX-PIN-001": 200}.items():
            store.set_inventory(sku, MARKET, units)
        live = ConfigStore(store.client).live()
        bundle = live.bundle if live is not None else load_config_dir(console.config_dir)
        return Refitter(store, bundle, device="cpu").run(force=True)
    finally:
        store.close()


def test_a_pos_key_is_refused(console: Console) -> None:
    page = console.page()
    console.sign_in(page, POS_KEY, "Till 3")
    msg = page.locator("#login-msg")
    msg.filter(has_text="pos key").wait_for(timeout=WAIT_MS)
    assert "operator or admin key" in msg.inner_text()
    assert page.locator("#nav").is_hidden()
    assert page.locator("#view-board").is_hidden()
    # Nothing was kept for the session: a reload asks for a key again.
    page.reload()
    page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
    page.context.close()


def test_a_sale_over_the_api_appears_on_the_board(console: Console) -> None:
    page = console.page()
    console.sign_in(page, OPERATOR_KEY, "Alice Operator")
    row = page.locator('#board-rows tr[data-sku="CMX-PIN-001"]')
    row.wait_for(timeout=WAIT_MS)
    units = int(row.locator("td.units").inner_text().split("/")[0])
    assert page.locator(f'.drop-card[data-drop="{DROP}"]').inner_text().count("next") >= 1

    r = console.http.post(
        "/v1/events",
        json={
            "events": [
                {
                    "event_id": "console-board-sale-1",
                    "type": "sale",
                    "ts": datetime.now(UTC).isoformat(),
                    "sku": "CMX-PIN-001",
                    "market": MARKET,
                    "quantity": 2,
                    "unit_price": 12.99,
                }
            ]
        },
        headers=POS,
    )
    assert r.status_code == 200 and r.json()["results"][0]["status"] == "accepted", r.text
    # The board was not reloaded: its own polling brings the sale in.
    row.locator("td.units", has_text=f"{units - 2} / 200").wait_for(timeout=WAIT_MS)
    # It polls every second (so it is about one poll behind a sale, not more).
    js = console.http.get("/console/console.js").text
    assert "const BOARD_POLL_MS = 1000;" in js

    # Sorted and filtered on the server.
    page.click('#board th[data-sort="price"]')
    page.locator('#board th.sorted-asc[data-sort="price"]').wait_for(timeout=WAIT_MS)
    page.locator("#board-rows tr").first.filter(has_text="CMX-PIN-001").wait_for(timeout=WAIT_MS)
    page.fill("#board-filter", "sketch")
    page.locator("#page-info", has_text="1–1 of 1").wait_for(timeout=WAIT_MS)
    assert page.locator("#board-rows tr").first.get_attribute("data-sku") == "CMX-VAR-002"
    page.context.close()


def test_operator_previews_applies_and_approves_a_floor(console: Console) -> None:
    now = datetime.now(UTC)
    restocks, events = _history(now)
    r = console.http.post("/v1/events", json={"events": restocks}, headers=OPERATOR)
    assert {x["status"] for x in r.json()["results"]} == {"accepted"}, r.text
    for i in range(0, len(events), 1000):
        r = console.http.post("/v1/events", json={"events": events[i : i + 1000]}, headers=POS)
        assert r.status_code == 200, r.text
        assert {x["status"] for x in r.json()["results"]} == {"accepted"}, r.text
    first = _refit(console, replay=False)
    assert first.state == "published", first.reasons
    sku = "CMX-VAR-001"

    # Another operator tightens the approval band, so the next re-fit's moves wait.
    got = console.http.get(f"/v1/console/drops/{DROP}", headers=OPERATOR).json()
    drop = got["drop"]
    drop["guardrails"]["approval_band_pct"] = 1
    r = console.http.put(
        f"/v1/drops/{DROP}", json=drop, headers={**OPERATOR, "X-Actor": "Bob Setup"}
    )
    assert r.status_code == 200, r.text

    page = console.page()
    console.sign_in(page, OPERATOR_KEY, "Alice Operator")
    row = page.locator(f'#board-rows tr[data-sku="{sku}"]')
    row.locator(".tag.surface").wait_for(timeout=WAIT_MS)
    page.locator(f'.drop-card[data-drop="{DROP}"]').wait_for()
    served = console.price(sku)
    assert served["version"] == first.version
    DOCS.mkdir(exist_ok=True)
    page.screenshot(path=str(DOCS / "console-board.png"))

    # The SKU page: surface heat map, timeline, explain in words.
    row.locator("a").first.click()
    page.locator("#explain-text", has_text="optimum").wait_for(timeout=WAIT_MS)
    assert f"{served['price']:.2f}" in page.locator("#explain-text").inner_text()
    page.locator("#heatmap-legend", has_text="cell served now").wait_for(timeout=WAIT_MS)
    lit = page.evaluate(
        "() => { const c = document.getElementById('heatmap');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] && (d[i] !== d[i + 1]"
        " || d[i + 1] !== d[i + 2])) n++; return n; }"
    )
    assert lit > 10_000  # the heat map is drawn in colour, not left blank
    page.screenshot(path=str(DOCS / "console-sku.png"), full_page=True)

    # Preview a higher floor: live and candidate side by side.
    floor = round(served["price"] * 1.3, 2)
    page.fill("#pv-floor", f"{floor}")
    page.click("#preview-btn")
    page.locator('#preview-table tr[data-row="candidate"]').wait_for(timeout=WAIT_MS)
    cells = page.locator('#preview-table tr[data-row="candidate"] td').all_inner_texts()
    candidate_now = float(cells[1])
    assert candidate_now >= floor
    assert float(page.locator('#preview-table tr[data-row="live"] td').nth(1).inner_text()) == (
        pytest.approx(served["price"])
    )
    assert console.price(sku)["price"] == served["price"]  # nothing published by a preview

    # Apply: a new config version through PUT /v1/drops, named in the audit.
    page.click("#apply-btn")
    page.locator("#apply-msg", has_text="is live").wait_for(timeout=WAIT_MS)
    live = console.http.get("/v1/config", headers=OPERATOR).json()
    rails = next(s for d in live["config"]["drops"] for s in d["skus"] if s["sku"] == sku)
    assert rails["guardrails"]["floor"] == floor
    assert live["actor"].startswith("Alice Operator (operator:")

    # The worker's next re-fit holds the move (beyond the 1 % band) for an approval.
    held = _refit(console, replay=True)
    # (the other SKUs barely move and are published; this SKU's move waits)
    assert held.approval_id is not None, held.reasons
    assert any(r.startswith(f"{sku}/") and "held for an operator" in r for r in held.reasons)
    page.click('nav a[data-view="approvals"]')
    card = page.locator(".approval").first
    card.wait_for(timeout=WAIT_MS)
    assert sku in card.inner_text() and "beyond the approval band of 1" in card.inner_text()
    card.locator("input").fill("floor agreed with the artist")
    card.locator("button.approve").click()
    card.locator(".msg", has_text="approved by Alice Operator").wait_for(timeout=WAIT_MS)

    # The new price is served to the terminals.
    after = console.price(sku)
    deadline = datetime.now(UTC) + timedelta(seconds=20)
    while after["version"] == first.version and datetime.now(UTC) < deadline:
        after = console.price(sku)
    assert after["version"] != first.version
    assert after["price"] >= floor
    assert after["price"] == pytest.approx(candidate_now, rel=0.05)

    # The audit, filtered to approvals, names the person.
    page.click('nav a[data-view="audit"]')
    page.select_option("#audit-kind", "refit")
    approve = page.locator('#audit-rows tr[data-kind="refit.approve"]').first
    approve.wait_for(timeout=WAIT_MS)
    # An approval records the person named in X-Actor, never a key (config changes
    # above still add the role and key id: "Alice Operator (operator:...)").
    assert approve.locator("td.actor").inner_text() == "Alice Operator"
    assert "floor agreed with the artist" in approve.inner_text()

    # Versions: a rollback first says what it would restore (and needs an admin key).
    page.click('nav a[data-view="versions"]')
    old = page.locator(f'#versions-rows tr[data-version="{first.version}"]')
    old.locator("button").click()
    text = page.locator("#rollback-text", has_text="would serve")
    text.wait_for(timeout=WAIT_MS)
    assert f"would serve {first.version} again" in text.inner_text()
    assert page.locator("#rollback-confirm").is_disabled()
    assert console.price(sku)["version"] == after["version"]  # nothing rolled back
    page.context.close()
