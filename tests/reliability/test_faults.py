"""Faults injected into real processes while clients read prices and sell.

Every test runs a real ``redis-server`` (append-only), ``dropprice serve`` with two
uvicorn workers, and client threads over HTTP. Faults are signals sent to those
processes: SIGTERM/SIGKILL/SIGSTOP to Redis, SIGKILL to the whole service.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest
import redis
from reliability_harness import (
    CATALOG,
    FIGURES,
    MARKET,
    POS_KEY,
    FaultyRedis,
    ReliabilityEnv,
    SaleRecord,
    Traffic,
    event_outcome,
    sale_event,
    wait_for,
)

from service import keys

pytestmark = pytest.mark.timeout(120)


def _inventory(server: FaultyRedis, sku: str) -> int:
    client = server.client()
    try:
        raw = client.get(keys.inventory(sku, MARKET))
    finally:
        client.close()
    assert raw is not None, f"no inventory counter for {sku}"
    return int(raw)


def _stream_len(server: FaultyRedis, sku: str) -> int:
    client = server.client()
    try:
        return int(client.xlen(keys.events(sku)))
    finally:
        client.close()


def _price(client: httpx.Client, sku: str) -> dict[str, Any]:
    r = client.get(f"/v1/prices/{sku}", params={"market": MARKET})
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize("fault", ["stop", "crash"])
def test_redis_stopped_and_restarted_under_load(env: ReliabilityEnv, fault: str) -> None:
    """Redis stopped (SIGTERM) or crashed (SIGKILL) under load, then started again: reads
    never 5xx (stale while Redis is away), sales 503 + Retry-After, each counted once."""
    skus = ("REL-A", "REL-B", "REL-C") if fault == "stop" else ("REL-D", "REL-E", "REL-F")
    stock = {sku: CATALOG[sku] for sku in skus}
    svc, faulty_redis = env.service, env.redis
    initial = {sku: _inventory(faulty_redis, sku) for sku in stock}
    assert initial == stock

    traffic = Traffic(svc.base_url, list(stock)).start(readers=2, sellers=3)
    time.sleep(1.0)
    if fault == "stop":
        faulty_redis.down()
    else:
        faulty_redis.crash()
    outage_start = sum(traffic.read_sources.values())
    assert wait_for(lambda: traffic.read_sources.get("stale", 0) > 0, timeout=10), (
        f"no stale read while Redis was down: {traffic.read_sources}, {traffic.read_errors}"
    )
    assert wait_for(lambda: traffic.sale_status.get(503, 0) > 0, timeout=10)
    time.sleep(0.5)
    faulty_redis.up()
    with httpx.Client(base_url=svc.base_url, headers={"X-API-Key": POS_KEY}) as client:
        assert wait_for(lambda: _price(client, "REL-A")["source"] != "stale", timeout=15)
    time.sleep(0.5)
    traffic.stop()

    assert not traffic.server_errors[:1] or all(
        kind == "sale" and code == 503 for kind, code, _ in traffic.server_errors
    )
    assert all(code < 500 for code in traffic.read_status), traffic.read_status
    assert traffic.read_status[200] > outage_start
    assert traffic.retry_after_missing == 0
    assert all(s.outcome in ("accepted", "sold_out") for s in traffic.sales), {
        s.outcome for s in traffic.sales
    }
    for sku in stock:
        accepted = traffic.accepted_units(sku)
        events = sum(1 for x in traffic.sales if x.sku == sku and x.outcome == "accepted")
        in_stream = _stream_len(faulty_redis, sku)
        FIGURES.add(
            events_lost=max(0, events - in_stream), units_oversold=max(0, accepted - initial[sku])
        )
        assert _inventory(faulty_redis, sku) == initial[sku] - accepted, sku
        assert in_stream == events, sku  # none lost, none doubled
    assert _inventory(faulty_redis, "REL-C") >= 0
    assert sum(s.outcome == "accepted" for s in traffic.sales) > 0
    assert traffic.sale_status[503] > 0


def test_last_units_race_two_workers_never_oversell(env: ReliabilityEnv) -> None:
    """Eight clients over two workers race for the last units: sold == stock, exactly."""
    stock = {"REL-LAST": CATALOG["REL-LAST"]}
    svc, faulty_redis = env.service, env.redis
    assert _inventory(faulty_redis, "REL-LAST") == 9
    barrier = threading.Barrier(8)
    records: list[SaleRecord] = []
    lock = threading.Lock()
    traffic = Traffic(svc.base_url, list(stock))

    def client_thread(k: int) -> None:
        with httpx.Client(
            base_url=svc.base_url, headers={"X-API-Key": POS_KEY}, timeout=10
        ) as client:
            barrier.wait()
            for i in range(4):
                rec = SaleRecord(
                    f"race-{k}-{i}-{uuid.uuid4().hex[:8]}", "REL-LAST", 1 + (k + i) % 2
                )
                traffic.sell_once(client, rec)
                with lock:
                    records.append(rec)

    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    FIGURES.add(
        requests_sent=0,
        sales_attempted=len(records),
        sales_accepted=sum(r.outcome == "accepted" for r in records),
        sales_refused_sold_out=sum(r.outcome == "sold_out" for r in records),
    )
    sold = sum(r.quantity for r in records if r.outcome == "accepted")
    left = _inventory(faulty_redis, "REL-LAST")
    assert all(r.outcome in ("accepted", "sold_out") for r in records)
    assert left >= 0
    assert sold + left == 9
    assert sold >= 8  # only a 2-unit request can be refused with 1 unit left
    FIGURES.add(units_oversold=max(0, sold - 9))


def test_service_sigkill_mid_batch_each_event_all_or_nothing(env: ReliabilityEnv) -> None:
    """SIGKILL the service while it applies batches; every event is applied whole or not at all,
    and replaying the batches applies the rest exactly once."""
    skus = [f"REL-K{i}" for i in range(4)]
    stock = {sku: CATALOG[sku] for sku in skus}
    svc, faulty_redis = env.service, env.redis
    batches = [
        [sale_event(skus[(b + i) % len(skus)], quantity=1 + i % 3) for i in range(400)]
        for b in range(6)
    ]
    answered: list[int] = []

    def send_all() -> None:
        with httpx.Client(
            base_url=svc.base_url, headers={"X-API-Key": POS_KEY}, timeout=30
        ) as client:
            for batch in batches:
                try:
                    r = client.post("/v1/events", json={"events": batch})
                    answered.append(r.status_code)
                except httpx.HTTPError:
                    return

    sender = threading.Thread(target=send_all)
    sender.start()
    # Kill as soon as the first events land, while the rest of the batches are in flight.
    assert wait_for(
        lambda: sum(_stream_len(faulty_redis, s) for s in skus) > 0, timeout=20, interval=0.005
    )
    svc.kill()
    sender.join(30)
    applied_before = {s: stock[s] - _inventory(faulty_redis, s) for s in skus}
    assert sum(applied_before.values()) < sum(e["quantity"] for b in batches for e in b), (
        "the service finished every batch before the kill; the test did not kill mid-batch"
    )

    client = faulty_redis.client()
    try:
        # All-or-nothing per event: the idempotency record, the stream entry and the
        # inventory decrement exist together or not at all.
        for s in skus:
            entries = client.xrange(keys.events(s))
            in_stream = {dict(fields).get("event_id") for _, fields in entries}
            assert len(in_stream) == len(entries), "an event was appended twice"
            seen = {
                e["event_id"]
                for b in batches
                for e in b
                if e["sku"] == s and client.exists(keys.seen(s, e["event_id"]))
            }
            assert in_stream == seen, s
            qty = {e["event_id"]: e["quantity"] for b in batches for e in b}
            assert applied_before[s] == sum(qty[eid] for eid in seen), s
    finally:
        client.close()

    svc2 = svc.restart()
    outcomes: dict[str, str] = {}
    with httpx.Client(base_url=svc2.base_url, headers={"X-API-Key": POS_KEY}, timeout=30) as http:
        for batch in batches:
            r = http.post("/v1/events", json={"events": batch})
            assert r.status_code == 200, r.text
            FIGURES.add(requests_sent=1)
            for event, result in zip(batch, r.json()["results"], strict=True):
                outcomes[event["event_id"]] = event_outcome(result)
    assert set(outcomes.values()) <= {"accepted", "duplicate"}
    total = {s: sum(e["quantity"] for b in batches for e in b if e["sku"] == s) for s in skus}
    sent = {s: sum(1 for b in batches for e in b if e["sku"] == s) for s in skus}
    FIGURES.add(events_lost=sum(max(0, sent[s] - _stream_len(faulty_redis, s)) for s in skus))
    for s in skus:
        assert _inventory(faulty_redis, s) == stock[s] - total[s], s
        assert _stream_len(faulty_redis, s) == sum(
            1 for b in batches for e in b if e["sku"] == s
        ), s
    FIGURES.add(sales_attempted=len(outcomes), sales_accepted=len(outcomes))


def _answers_ping(url: str) -> bool:
    """True when Redis answers a PING within 0.2 s."""
    client = redis.Redis.from_url(url, socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@pytest.mark.parametrize("slowdown", ["sigstop", "debug_sleep"])
def test_slow_redis_reads_fall_back_within_budget(env: ReliabilityEnv, slowdown: str) -> None:
    """A hung Redis (SIGSTOP, or ``DEBUG SLEEP`` blocking every client): reads keep
    answering from the process and are marked ``stale``, sales answer 503 + Retry-After
    within the Redis budget (``DROPPRICE_REDIS_TIMEOUT_MS``, 250 ms) rather than at the
    client's own timeout (4 s here, so a hang fails the test); all resumes afterwards."""
    svc, faulty_redis = env.service, env.redis
    sku = "REL-S"
    with httpx.Client(base_url=svc.base_url, headers={"X-API-Key": POS_KEY}, timeout=4.0) as client:
        before = _price(client, sku)
        units = before["inventory"]
        sleeper = None
        if slowdown == "sigstop":
            faulty_redis.pause()
        else:
            sleeper = faulty_redis.sleep(6.0)
            # Wait until the server is really blocked (a PING times out), however long the
            # sleeper thread takes to be scheduled on a loaded machine.
            assert wait_for(lambda: not _answers_ping(faulty_redis.url), timeout=5), (
                "DEBUG SLEEP never blocked the server"
            )
        refused_event = sale_event(sku)
        try:
            sale = client.post("/v1/events", json={"events": [refused_event]})
            reads = [_price(client, sku) for _ in range(5)]
            stale = wait_for(lambda: _price(client, sku)["source"] == "stale", timeout=2.5)
            FIGURES.add(requests_sent=7)
        finally:
            if slowdown == "sigstop":
                faulty_redis.resume()
        if sleeper is not None:
            sleeper.join(10)
        assert sale.status_code == 503, sale.text
        assert int(sale.headers["retry-after"]) >= 1
        # The 503 is a problem document with its code and the request's id.
        assert sale.headers["content-type"] == "application/problem+json"
        problem = sale.json()
        assert problem["code"] == "store_unavailable" and problem["status"] == 503
        assert problem["request_id"] == sale.headers["x-request-id"]
        assert all(r["price"] == before["price"] for r in reads)
        assert stale, "reads were never marked stale while Redis hung"
        FIGURES.add(stale_reads=sum(r["source"] == "stale" for r in reads))
        # Retried with the same event_id once Redis answers, the sale counts exactly once
        # (whether or not the hung server ran it when it woke up).
        after = client.post("/v1/events", json={"events": [refused_event]})
        FIGURES.add(requests_sent=1, sales_attempted=1, sales_accepted=1, sales_retried=1)
        assert after.status_code == 200
        result = after.json()["results"][0]
        assert result["status"] == "accepted" or (
            result["status"] == "duplicate" and result["first_status"] == "accepted"
        ), result
        assert wait_for(lambda: _price(client, sku)["source"] != "stale", timeout=10)
        assert wait_for(lambda: _price(client, sku)["inventory"] == units - 1, timeout=5)
