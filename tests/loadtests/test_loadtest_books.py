"""The books checker: it must catch an oversell, a lost or doubled sale, and 5xx."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtests.books import check_books, read_ledger

A, B = ("A", "m1"), ("B", "m1")


def _sale(
    event_id: str, key: tuple[str, str], qty: int, status: str = "accepted", **extra: object
) -> dict[str, object]:
    return {
        "event_id": event_id,
        "sku": key[0],
        "market": key[1],
        "quantity": qty,
        "status": status,
        **extra,
    }


def _checks(report) -> dict[str, bool | None]:  # type: ignore[no-untyped-def]
    return {c.name: c.ok for c in report.checks}


def test_clean_books_pass_and_count_sell_outs() -> None:
    sales = [
        _sale("e1", A, 2),
        _sale("e2", A, 1),
        _sale("e3", A, 1, "sold_out"),
        _sale("e1", A, 2, "duplicate", replay=True),
        _sale("e4", B, 1),
    ]
    report = check_books(
        initial={A: 3, B: 5},
        final={A: 0, B: 4},
        sales=sales,
        status_counts={("GET /v1/prices/[sku]", "2xx"): 100},
        stream=[("e1", "A", "m1", 2), ("e2", "A", "m1", 1), ("e4", "B", "m1", 1)],
    )
    assert report.ok
    assert (report.units_sold, report.sales_accepted, report.sales_sold_out) == (4, 3, 1)
    assert (report.replays, report.sold_out_pairs, report.pairs) == (1, 1, 2)


def test_oversell_is_caught() -> None:
    # The service accepted 4 units of a SKU that had 3 and its counter went negative.
    report = check_books(
        initial={A: 3},
        final={A: -1},
        sales=[_sale("e1", A, 2), _sale("e2", A, 2)],
        status_counts={},
        stream=[("e1", "A", "m1", 2), ("e2", "A", "m1", 2)],
    )
    assert _checks(report)["no oversell"] is False
    assert not report.ok


def test_inventory_moved_without_an_accepted_sale_is_caught_and_explained() -> None:
    report = check_books(
        initial={A: 5},
        final={A: 3},
        sales=[_sale("e1", A, 1), _sale("e2", A, 1, "http_504")],
        status_counts={("POST /v1/events", "5xx"): 1},
        stream=[("e1", "A", "m1", 1), ("e2", "A", "m1", 1)],
    )
    checks = _checks(report)
    assert checks["inventory balances"] is False
    assert "lost answers" in next(c.detail for c in report.checks if c.name == "inventory balances")
    assert checks["no 5xx"] is False
    assert (
        checks["stream exactly once"] is False
    )  # e2 is in the stream, no terminal saw it accepted


@pytest.mark.parametrize(
    "stream, problem",
    [
        ([("e1", "A", "m1", 1), ("e1", "A", "m1", 1)], "more than once"),
        ([], "missing"),
        ([("e1", "A", "m1", 1), ("zz", "A", "m1", 1)], "not accepted"),
    ],
)
def test_stream_must_hold_each_accepted_sale_exactly_once(
    stream: list[tuple[str, str, str, int]], problem: str
) -> None:
    report = check_books(
        initial={A: 5}, final={A: 4}, sales=[_sale("e1", A, 1)], status_counts={}, stream=stream
    )
    detail = next(c for c in report.checks if c.name == "stream exactly once")
    assert detail.ok is False
    assert problem in detail.detail


def test_stream_check_is_skipped_not_passed_without_redis() -> None:
    report = check_books(
        initial={A: 1}, final={A: 0}, sales=[_sale("e1", A, 1)], status_counts={}, stream=None
    )
    assert _checks(report)["stream exactly once"] is None
    assert report.ok


def test_read_ledger_merges_processes(tmp_path: Path) -> None:
    for pid, sale in ((1, _sale("e1", A, 1)), (2, _sale("e2", B, 2))):
        summary = {"kind": "summary", "status": [["POST /v1/events", "2xx", 1]], "stale": pid - 1}
        (tmp_path / f"ledger-{pid}.jsonl").write_text(
            json.dumps(sale) + "\n" + json.dumps(summary) + "\n"
        )
    sales, status, stale = read_ledger(tmp_path)
    assert [s["event_id"] for s in sales] == ["e1", "e2"]
    assert status[("POST /v1/events", "2xx")] == 2
    assert stale == 1
    with pytest.raises(FileNotFoundError, match="did not finish"):
        read_ledger(tmp_path / "missing")
