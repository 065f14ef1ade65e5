"""A Redis that does not answer costs one time budget, not one per retry.

The service's Redis client (:func:`service.store.connect`) has a time budget per call
(``DROPPRICE_REDIS_TIMEOUT_MS``). A hung server (SIGSTOP, a black-holed host) accepts
the connection and never answers; the client must give up after one budget, so the
503 a terminal gets is bounded by it. The peer here is a real TCP listener that reads
and never answers, which is what a hung Redis looks like on the wire; counting the
connections it accepts shows how many attempts the client made, with no clock.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from service.exceptions import StoreUnavailable
from service.store import EventRecord, PriceStore, connect


@dataclass
class SilentPeer:
    """A TCP listener that accepts connections, reads what it is sent, answers nothing."""

    listener: socket.socket
    accepted: list[socket.socket] = field(default_factory=list)
    received: list[bytes] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()
        return f"redis://{host}:{port}/0"

    def serve(self) -> None:
        self.listener.settimeout(0.05)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                for conn in self.accepted:
                    self._drain(conn)
                continue
            conn.setblocking(False)
            self.accepted.append(conn)

    def _drain(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except (BlockingIOError, OSError):
            return
        if data:
            self.received.append(data)


@pytest.fixture
def silent_peer() -> Iterator[SilentPeer]:
    listener = socket.create_server(("127.0.0.1", 0))
    peer = SilentPeer(listener)
    thread = threading.Thread(target=peer.serve, daemon=True)
    thread.start()
    yield peer
    peer.stop.set()
    thread.join(5)
    for conn in peer.accepted:
        conn.close()
    listener.close()


def _sale() -> EventRecord:
    return EventRecord(
        event_id="budget-1",
        kind="sale",
        sku="TEE-1",
        market="nyc",
        quantity=1,
        fields={"type": "sale", "quantity": "1"},
        quoted_price=None,
        list_price=30.0,
    )


@pytest.mark.parametrize("call", ["ping", "record_events"])
def test_a_hung_redis_is_tried_once_per_call(silent_peer: SilentPeer, call: str) -> None:
    """A timeout is not retried: one connection, one attempt, then StoreUnavailable.

    (The client used to retry a timed-out call on a fresh connection, so a sale waited
    two budgets, 505-517 ms against 250 ms, before its 503.)"""
    store = PriceStore(connect(silent_peer.url, timeout=0.2))
    try:
        with pytest.raises(StoreUnavailable, match="Timeout"):
            if call == "ping":
                store.ping()
            else:
                store.record_events([_sale()])
    finally:
        store.close()
    assert len(silent_peer.accepted) == 1, (
        f"the client opened {len(silent_peer.accepted)} connections for one call"
    )


def test_a_connection_closed_by_redis_is_retried_once_on_a_fresh_one(redis_url: str) -> None:
    """The one retry kept: a pooled connection Redis closed (a restart) is replaced at
    once, so the first request after a restart is served instead of refused."""
    store = PriceStore(connect(redis_url, timeout=0.5))
    try:
        assert store.ping()
        store.client.client_kill_filter(_type="normal", skipme=False)
        assert store.ping()
    finally:
        store.close()
