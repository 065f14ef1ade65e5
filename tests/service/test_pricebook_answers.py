"""A remembered price answer is made again when anything it was made of changes.

:meth:`PriceBook.price` keeps each SKU-market's last answer for reads in the same tenth
of a second; a sale, a new surface, going stale, a new quote key, the next period or the
next tick must each give the answer a fresh read would.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from service.pricebook import CatalogEntry, PriceBook, QuoteSigner
from service.store import SurfaceRecord

START = datetime(2026, 12, 5, 18, tzinfo=UTC)
NOW = START.timestamp() + 30.0  # 30 s into period 0


def _book() -> PriceBook:
    book = PriceBook(signer=QuoteSigner(b"k1", 120))
    book.set_catalog({"TEE-1": CatalogEntry("TEE-1", 20.0, "USD", ("nyc",))})
    price = np.array([[30.0, 31.0], [20.0, 21.0], [10.0, 11.0]])  # rows: units left 0..2
    book.set_surfaces("TEE-1", {"nyc": ("v1", SurfaceRecord(price, START, 3600))})
    book.set_units("TEE-1", "nyc", 2)
    book.stale = False
    return book


def _fresh(book: PriceBook, now: float) -> tuple[object, ...]:
    """The answer with nothing remembered."""
    book._answers.clear()
    return tuple(book.price("TEE-1", "nyc", now))


def test_each_input_of_a_remembered_answer_renews_it() -> None:
    book = _book()
    first = book.price("TEE-1", "nyc", NOW)
    assert (first.price, first.inventory, first.source) == (10.0, 2, "surface")
    assert book.price("TEE-1", "nyc", NOW + 0.01) is first  # same tick: shared

    changes = [
        lambda: book.set_units("TEE-1", "nyc", 5),  # the same row (clipped), more units
        lambda: book.set_units("TEE-1", "nyc", 1),
        lambda: book.set_surfaces(
            "TEE-1", {"nyc": ("v2", SurfaceRecord(np.full((3, 2), 7.0), START, 3600))}
        ),
        lambda: setattr(book, "stale", True),
        lambda: setattr(book, "signer", QuoteSigner(b"k2", 120)),
        lambda: book.set_catalog(
            {
                "TEE-1": CatalogEntry(
                    "TEE-1", 25.0, "USD", ("nyc",), fixed_markets=frozenset({"nyc"})
                )
            }
        ),
    ]
    seen = {tuple(first)}
    for change in changes:
        book.price("TEE-1", "nyc", NOW)  # remember the answer before the change
        change()
        got = tuple(book.price("TEE-1", "nyc", NOW))
        assert got == _fresh(book, NOW)
        assert got not in seen
        seen.add(got)

    later = NOW + 3600.0  # period 1
    assert tuple(book.price("TEE-1", "nyc", later)) == _fresh(book, later)
    tick = NOW + 0.1
    answer = book.price("TEE-1", "nyc", tick)
    assert answer.expires_at != book.price("TEE-1", "nyc", NOW).expires_at
    assert tuple(answer) == _fresh(book, tick)


def test_every_read_is_counted_in_the_served_price_log() -> None:
    book = _book()
    for _ in range(5):
        book.price("TEE-1", "nyc", NOW)
    assert book.served.pending() == 5


def test_a_new_list_price_renews_the_answer_of_a_sku_without_a_surface() -> None:
    book = PriceBook()
    book.set_catalog({"CAP-1": CatalogEntry("CAP-1", 20.0, "USD", ("nyc",))})
    assert book.price("CAP-1", "nyc", NOW).price == 20.0
    book.set_catalog({"CAP-1": CatalogEntry("CAP-1", 25.0, "USD", ("nyc",))})
    assert book.price("CAP-1", "nyc", NOW).price == 25.0
