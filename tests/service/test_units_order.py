"""A process's count of units left never goes back to an older one.

Each accepted stock move's count comes twice: in the write's own reply and in a
``dp:chan:updates`` notice. On a cluster the notice of an earlier sale can arrive after
the reply of a later one; the stream id both carry orders them.
"""

from __future__ import annotations

from service.pricebook import PriceBook


def test_a_late_notice_of_an_earlier_sale_does_not_undo_a_later_count() -> None:
    book = PriceBook()
    book.set_units("TEE-1", "nyc", 14, seq="1700000000002-0")  # the later write's reply
    book.set_units("TEE-1", "nyc", 10, seq="1700000000001-3")  # the earlier sale's notice
    assert book._units[("TEE-1", "nyc")] == 14
    book.set_units("TEE-1", "nyc", 13, seq="1700000000002-1")  # a newer sale
    assert book._units[("TEE-1", "nyc")] == 13
    book.set_units("TEE-1", "nyc", 40)  # an operator's set carries no id: applied
    assert book._units[("TEE-1", "nyc")] == 40
