"""Signal layer throughput: archetype detection over many SKU-markets, and the cost of
recording each served price on the price-read path.

Run::

    python benchmarks/bench_signals.py [--skus 200] [--markets 50] [--weeks 3]

Prints, in one run: the time to draw the synthetic stream (reference), to build the hourly
panel, and to run each detector over ``skus x markets`` SKU-markets; and the cost of
``ServedPriceLog.record`` next to a bare dict increment and to a full ``PriceBook.price``
read measured in the same run (ratios, not absolute targets).
"""

from __future__ import annotations

import argparse
import time
import timeit

from pricing.signals import (
    build_signal_panel,
    detect_creator_led,
    detect_edge_acceleration,
    detect_regional_spikes,
)
from pricing.synthetic import CreatorLed, EdgeMarket, RegionalSpike, simulate_event_stream


def _timed(fn, *args):
    t0 = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--markets", type=int, default=50)
    ap.add_argument("--weeks", type=int, default=3)
    args = ap.parse_args()
    skus = [f"S{i:05d}" for i in range(args.skus)]
    markets = [f"m{i:03d}" for i in range(args.markets)]
    plant = (RegionalSpike(markets[1]), CreatorLed("ava", skus[0]), EdgeMarket(markets[2]))
    stream, t_gen = _timed(
        lambda: simulate_event_stream(
            key=0, skus=skus, markets=markets, hours=args.weeks * 168, plant=plant
        )
    )
    n = args.skus * args.markets
    print(
        f"{n} SKU-markets x {args.weeks * 168} h: {len(stream.events):,} events, "
        f"{len(stream.lookups):,} look-up rows"
    )
    print(f"  draw stream (reference)   {t_gen:7.2f} s")
    panel, t_panel = _timed(build_signal_panel, stream.events, stream.lookups)
    print(f"  hourly panel              {t_panel:7.2f} s  ({t_panel / t_gen:.2f}x the draw)")
    found = []
    for name, fn, extra in (
        ("regional spikes", detect_regional_spikes, ()),
        ("creator-led", lambda p: detect_creator_led(stream.events, p), ()),
        ("edge acceleration", detect_edge_acceleration, ()),
    ):
        out, t = _timed(fn, panel, *extra)
        found += [(d.archetype, d.market or d.creator) for d in out]
        print(f"  {name:25s} {t:7.2f} s  ({t / t_gen:.2f}x the draw)")
    print(f"  detections: {found}")

    from service.pricebook import CatalogEntry, PriceBook
    from service.served import ServedPriceLog

    log = ServedPriceLog()
    counts: dict[tuple[str, str], int] = {}
    book = PriceBook()
    book.set_catalog({"S": CatalogEntry("S", 10.0, "USD", ("m",), arms={"m": "a"})})
    book.stale = False
    reps = 200_000
    t_dict = timeit.timeit(
        lambda: counts.__setitem__(("S", "m"), counts.get(("S", "m"), 0) + 1), number=reps
    )
    t_rec = timeit.timeit(lambda: log.record("S", "m", "a", 10.0, 1e9), number=reps)
    t_price = timeit.timeit(lambda: book.price("S", "m", 1e9), number=reps)
    print("served-price record on the read path:")
    print(f"  dict increment            {1e9 * t_dict / reps:7.0f} ns")
    print(
        f"  ServedPriceLog.record     {1e9 * t_rec / reps:7.0f} ns  ({t_rec / t_dict:.1f}x a dict increment)"
    )
    print(
        f"  PriceBook.price (with it) {1e9 * t_price / reps:7.0f} ns  (record = {t_rec / t_price:.0%} of a read)"
    )


if __name__ == "__main__":
    main()
