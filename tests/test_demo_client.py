"""The demo's reference POS client retries 429 after the ``Retry-After`` it is sent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from service.demo.client import retry_after_s, retrying


class _Busy(BaseHTTPRequestHandler):
    """Answers 429 with ``Retry-After: 2`` to the first two requests, then 200."""

    calls = 0

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        type(self).calls += 1
        if type(self).calls <= 2:
            self.send_response(429)
            self.send_header("Retry-After", "2")
        else:
            self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_url() -> Iterator[str]:
    _Busy.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_429_is_retried_after_the_retry_after_it_names(busy_url: str) -> None:
    waits: list[float] = []
    with httpx.Client() as http:
        r = retrying(lambda: http.get(busy_url), sleep=waits.append)
    assert r.status_code == 200
    assert _Busy.calls == 3
    # Both waits are the server's Retry-After, not the client's own backoff.
    assert waits == [2.0, 2.0]


def test_429_on_the_last_attempt_is_raised(busy_url: str) -> None:
    with httpx.Client() as http, pytest.raises(httpx.HTTPStatusError, match="429"):
        retrying(lambda: http.get(busy_url), attempts=2, sleep=lambda _s: None)


def test_retry_after_as_an_http_date_and_garbage() -> None:
    dated = httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert retry_after_s(dated, 0.5) == 0.0  # a date in the past: retry now
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "soon"}), 0.5) == 0.5
    assert retry_after_s(httpx.Response(429), 0.7) == 0.7
