"""Check the books after a load test: nothing oversold, every sale counted exactly once.

Speed is only half of a pre-drop test. Under the rush the service must also keep
its two promises, and the books say whether it did. For every SKU ``s`` and market
``m`` of the run, with ``I0`` the units before the run (read through the API),
``I1`` the units after, ``A`` the set of sales the terminals saw ``accepted`` and
``S`` the sale entries in the SKU's events stream:

- **no oversell**: ``I1 >= 0`` and ``sum_{a in A(s,m)} q_a <= I0``;
- **inventory balances**: ``I0 - I1 == sum_{a in A(s,m)} q_a``;
- **stream exactly once**: every accepted ``event_id`` appears in ``S`` exactly
  once, nothing else of the run does (no refused or duplicate sale), and
  ``sum_{e in S(s,m)} q_e == I0 - I1``;
- **no 5xx**: no answer of any route had a 5xx status.

A sale whose answer was lost (timeout, 5xx) may or may not have sold; the
balance then fails and the detail names how many such sales could explain it.
The stream check needs Redis (``--redis-url``, or the Redis ``dropprice
loadtest`` started itself); without it the check is reported ``skipped``.

Example:
    >>> report = check_books(
    ...     initial={("A", "m"): 3}, final={("A", "m"): 1},
    ...     sales=[{"event_id": "e1", "sku": "A", "market": "m", "quantity": 2,
    ...             "status": "accepted"}],
    ...     status_counts={}, stream=[("e1", "A", "m", 2)])
    >>> report.ok
    True
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = [
    "BooksReport",
    "Check",
    "check_books",
    "fetch_inventory",
    "read_ledger",
    "read_stream_sales",
]

Key = tuple[str, str]
StreamSale = tuple[str, str, str, int]
"""(event_id, sku, market, quantity) of one sale entry in an events stream."""


class Check(NamedTuple):
    """One line of the books: its name, ``True``/``False``/``None`` (skipped), detail."""

    name: str
    ok: bool | None
    detail: str


class BooksReport(NamedTuple):
    """The books of one run."""

    checks: tuple[Check, ...]
    units_initial: int
    units_sold: int
    sales_accepted: int
    sales_sold_out: int
    replays: int
    sold_out_pairs: int
    """SKU-markets with no units left at the end (the rush really sold out)."""
    pairs: int
    status_5xx: int

    @property
    def ok(self) -> bool:
        """All checks passed (skipped checks do not fail the books)."""
        return all(c.ok is not False for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        out = self._asdict()
        out["checks"] = [c._asdict() for c in self.checks]
        out["ok"] = self.ok
        return out


def read_ledger(ledger_dir: Path) -> tuple[list[dict[str, Any]], Counter[tuple[str, str]], int]:
    """Read every ``ledger-*.jsonl`` under ``ledger_dir``.

    Returns:
        (sale records, answers per (route, status class), stale answers).

    Raises:
        FileNotFoundError: no ledger was written (locust did not run to its end).
    """
    files = sorted(Path(ledger_dir).glob("ledger-*.jsonl"))
    if not files:
        raise FileNotFoundError(
            f"no ledger-*.jsonl under {ledger_dir}: the locust run did not finish"
        )
    sales: list[dict[str, Any]] = []
    status: Counter[tuple[str, str]] = Counter()
    stale = 0
    for path in files:
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record.get("kind") == "summary":
                for name, code, n in record["status"]:
                    status[(name, code)] += int(n)
                stale += int(record.get("stale", 0))
            else:
                sales.append(record)
    return sales, status, stale


def check_books(
    *,
    initial: Mapping[Key, int],
    final: Mapping[Key, int],
    sales: Sequence[Mapping[str, Any]],
    status_counts: Mapping[tuple[str, str], int],
    stream: Iterable[StreamSale] | None,
) -> BooksReport:
    """Reconcile inventory, the terminals' sales ledger and the events stream.

    Args:
        initial: units per (sku, market) before the run.
        final: units per (sku, market) after the run (same keys).
        sales: ledger records ``{event_id, sku, market, quantity, status[, replay]}``.
        status_counts: answers per (route, status class such as ``"5xx"``).
        stream: sale entries of the run's SKUs in the events streams, or ``None``
            when Redis cannot be read (the stream check is then skipped).
    """
    if set(initial) != set(final):
        raise ValueError(
            f"initial and final inventory must cover the same SKU-markets, "
            f"got {len(initial)} and {len(final)} (differ on "
            f"{sorted(set(initial) ^ set(final))[:5]})"
        )
    accepted: dict[str, Mapping[str, Any]] = {}
    lost: Counter[Key] = Counter()
    sold_by_key: Counter[Key] = Counter()
    sold_out = replays = 0
    double_accepted: list[str] = []
    for sale in sales:
        key = (sale["sku"], sale["market"])
        status = sale["status"]
        if sale.get("replay"):
            replays += 1
            continue
        if status == "accepted":
            if sale["event_id"] in accepted:
                double_accepted.append(sale["event_id"])
            accepted[sale["event_id"]] = sale
            sold_by_key[key] += int(sale["quantity"])
        elif status == "sold_out":
            sold_out += 1
        elif status.startswith("http_"):
            lost[key] += int(sale["quantity"])

    checks: list[Check] = []

    oversold = [
        f"{s}/{m}: {initial[(s, m)]} units, {sold_by_key[(s, m)]} accepted, {final[(s, m)]} left"
        for (s, m) in sorted(initial)
        if final[(s, m)] < 0 or sold_by_key[(s, m)] > initial[(s, m)]
    ]
    checks.append(
        Check(
            "no oversell",
            not oversold,
            "units accepted <= inventory on every SKU-market"
            if not oversold
            else f"{len(oversold)} oversold: " + "; ".join(oversold[:5]),
        )
    )

    unbalanced = []
    for key in sorted(initial):
        moved = initial[key] - final[key]
        if moved != sold_by_key[key]:
            hint = f" ({lost[key]} units in sales with lost answers)" if lost[key] else ""
            unbalanced.append(
                f"{key[0]}/{key[1]}: {initial[key]} - {final[key]} = {moved} "
                f"!= {sold_by_key[key]} accepted{hint}"
            )
    if double_accepted:
        unbalanced.append(f"event ids accepted twice: {double_accepted[:5]}")
    checks.append(
        Check(
            "inventory balances",
            not unbalanced,
            f"initial - remaining == accepted on all {len(initial)} SKU-markets"
            if not unbalanced
            else f"{len(unbalanced)} off: " + "; ".join(unbalanced[:5]),
        )
    )

    if stream is None:
        checks.append(Check("stream exactly once", None, "skipped: no Redis URL to read from"))
    else:
        seen: Counter[str] = Counter()
        stream_units: Counter[Key] = Counter()
        for event_id, sku, market, quantity in stream:
            seen[event_id] += 1
            stream_units[(sku, market)] += quantity
        problems = []
        twice = [e for e, n in seen.items() if n > 1]
        if twice:
            problems.append(f"{len(twice)} events more than once, e.g. {twice[:3]}")
        missing = [e for e in accepted if seen[e] == 0]
        if missing:
            problems.append(f"{len(missing)} accepted sales missing, e.g. {missing[:3]}")
        extra = [e for e in seen if e not in accepted]
        if extra:
            problems.append(f"{len(extra)} sales not accepted by any terminal, e.g. {extra[:3]}")
        off = [k for k in initial if stream_units[k] != initial[k] - final[k]]
        if off:
            problems.append(
                f"stream units != inventory moved on {len(off)} SKU-markets, e.g. "
                + ", ".join(
                    f"{s}/{m}: {stream_units[(s, m)]} vs {initial[(s, m)] - final[(s, m)]}"
                    for s, m in off[:3]
                )
            )
        checks.append(
            Check(
                "stream exactly once",
                not problems,
                f"{len(accepted)} accepted sales, each once in the stream"
                if not problems
                else "; ".join(problems),
            )
        )

    five = {k: n for k, n in status_counts.items() if k[1] == "5xx" and n}
    n5 = sum(five.values())
    checks.append(
        Check(
            "no 5xx",
            n5 == 0,
            "no 5xx on any route"
            if n5 == 0
            else "; ".join(f"{name}: {n}" for (name, _), n in sorted(five.items())),
        )
    )
    return BooksReport(
        checks=tuple(checks),
        units_initial=sum(initial.values()),
        units_sold=sum(sold_by_key.values()),
        sales_accepted=len(accepted),
        sales_sold_out=sold_out,
        replays=replays,
        sold_out_pairs=sum(1 for k in final if final[k] == 0),
        pairs=len(initial),
        status_5xx=n5,
    )


def fetch_inventory(
    base_url: str, api_key: str, pairs: Sequence[Key], *, timeout: float = 10.0
) -> dict[Key, int]:
    """Units left per (sku, market), read through ``POST /v1/prices:batch`` (500 a call).

    Raises:
        RuntimeError: the service is unreachable or answered something other than a
            price per item.
    """
    import httpx

    out: dict[Key, int] = {}
    with httpx.Client(base_url=base_url, headers={"X-API-Key": api_key}, timeout=timeout) as http:
        for i in range(0, len(pairs), 500):
            chunk = pairs[i : i + 500]
            try:
                resp = http.post(
                    "/v1/prices:batch",
                    json={"items": [{"sku": s, "market": m} for s, m in chunk]},
                )
            except httpx.HTTPError as exc:
                raise RuntimeError(f"cannot read inventory from {base_url}: {exc!r}") from exc
            if resp.status_code != 200:
                raise RuntimeError(
                    f"POST /v1/prices:batch answered {resp.status_code}: {resp.text[:200]}"
                )
            prices = resp.json().get("prices", [])
            if len(prices) != len(chunk):
                raise RuntimeError(
                    f"POST /v1/prices:batch returned {len(prices)} prices for {len(chunk)} items"
                )
            for (sku, market), item in zip(chunk, prices, strict=True):
                units = item.get("inventory") if isinstance(item, dict) else None
                if not isinstance(units, int):
                    raise RuntimeError(f"no inventory for {sku}/{market}: {str(item)[:200]}")
                out[(sku, market)] = units
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_stream_sales(redis_url: str, skus: Sequence[str]) -> list[StreamSale]:
    """Every ``sale`` entry of the given SKUs' events streams (``XRANGE`` in pages).

    Off the request path by design: the books run after the load has stopped.
    Works on a single node and on a Redis Cluster (one stream per SKU, each
    command touches one SKU's hash slot).
    """
    from service import keys
    from service.store import connect

    client = connect(redis_url)
    out: list[StreamSale] = []
    try:
        for sku in skus:
            start = "-"
            while True:
                page = client.xrange(keys.events(sku), min=start, max="+", count=1000)
                if not page:
                    break
                for _entry_id, fields in page:
                    f = {_text(k): _text(v) for k, v in fields.items()}
                    sale = _stream_sale(f, sku)
                    if sale is not None:
                        out.append(sale)
                last = _text(page[-1][0])
                start = "(" + last
                if len(page) < 1000:
                    break
    finally:
        client.close()
    return out


def _stream_sale(fields: dict[str, str], sku: str) -> StreamSale | None:
    """Parse one stream entry into a sale, or ``None`` for other event types."""
    if "event" in fields:  # the whole event as JSON
        event = json.loads(fields["event"])
        fields = {**{k: str(v) for k, v in event.items()}, **fields}
    kind = fields.get("type") or fields.get("kind")
    if kind != "sale":
        return None
    return (fields["event_id"], fields.get("sku", sku), fields["market"], int(fields["quantity"]))
