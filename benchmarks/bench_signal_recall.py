"""Recall and false positives of the signal archetypes on shop-like streams.

Run::

    python -m benchmarks.bench_signal_recall [--plants 10] [--controls 10] [--all-controls 40]

from the repository root (the streams come from the test helpers, ``tests.utils``).

Streams come from :mod:`tests.utils.shop_streams`, a generator independent of the
detectors (baskets, day-to-day over-dispersion, unequal markets, national lifts,
irregular creators, scheduled restocks, missing hours, local time across a daylight-
saving switch). Prints, per archetype, the recall on moderate and strong plants with
every nuisance on (a plant counts when its subject is detected), the other detections
in those streams, and the share of nuisance-only controls with any detection, per
nuisance alone and with all of them together. Targets (issue 20): recall >= 80 % per
archetype, false positives in <= 5 % of controls.
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections import Counter

from pricing.signals import ARCHETYPES, detect_signals
from tests.utils.shop_streams import (
    NUISANCE_TYPES,
    Creator,
    Edge,
    Nuisances,
    Spike,
    draw_shop_stream,
    only,
    plant_of,
)

_ZONED = "timezones" in inspect.signature(detect_signals).parameters


def detect(stream):
    """The detections on ``stream``, with the markets' time zones where supported."""
    extra = {"timezones": stream.timezones} if _ZONED else {}
    return detect_signals(stream.events, stream.lookups, **extra)


def is_hit(d, p) -> bool:
    if isinstance(p, Spike):
        return d.archetype == "regional_spike" and d.market == p.market
    if isinstance(p, Creator):
        return d.archetype == "creator_led" and (d.creator, d.sku) == (p.creator, p.sku)
    if isinstance(p, Edge):
        return d.archetype == "edge_acceleration" and d.market == p.market
    return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plants", type=int, default=10, help="streams per archetype and strength")
    ap.add_argument("--controls", type=int, default=10, help="controls per single nuisance")
    ap.add_argument("--all-controls", type=int, default=40, help="controls with every nuisance")
    args = ap.parse_args()
    t0 = time.perf_counter()

    print(f"recall, every nuisance on ({args.plants} streams per archetype and strength):")
    hit_p: list[float] = []  # p_adjusted of the planted subjects found
    control_p: list[float] = []  # smallest p_adjusted in each control stream that fired
    for arch in ARCHETYPES:
        hits, n, extra = Counter(), Counter(), Counter()
        for strength in ("moderate", "strong"):
            for i in range(args.plants):
                seed = (
                    10_000 + 100 * ARCHETYPES.index(arch) + i + (50 if strength == "strong" else 0)
                )
                p = plant_of(arch, strength, seed=i)
                found = detect(draw_shop_stream(seed=seed, plant=(p,)))
                n[strength] += 1
                hit = [d for d in found if is_hit(d, p)]
                hits[strength] += bool(hit)
                hit_p += [float(d.stats.get("p_adjusted", 0.0)) for d in hit]
                extra[strength] += sum(not is_hit(d, p) for d in found)
        total = hits["moderate"] + hits["strong"]
        print(
            f"  {arch:18s} {total:3d}/{sum(n.values()):<3d} {total / sum(n.values()):5.0%}"
            f"   (moderate {hits['moderate']}/{n['moderate']}, strong {hits['strong']}/{n['strong']};"
            f" other detections {sum(extra.values())})"
        )

    print("false positives in nuisance-only controls (streams with any detection):")
    worst = Counter()
    fired_total = n_total = 0
    for name in (*NUISANCE_TYPES, "all"):
        reps = args.all_controls if name == "all" else args.controls
        nz = Nuisances() if name == "all" else only(name)
        fired, kinds = 0, Counter()
        for i in range(reps):
            found = detect(
                draw_shop_stream(seed=20_000 + 1000 * (len(worst) + 1) + i, nuisances=nz)
            )
            fired += bool(found)
            kinds.update(d.archetype for d in found)
            if found:
                control_p.append(min(float(d.stats.get("p_adjusted", 0.0)) for d in found))
        worst[name] = fired
        fired_total += fired
        n_total += reps
        detail = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "none"
        print(f"  {name:20s} {fired:3d}/{reps:<3d} {fired / reps:5.0%}   detections: {detail}")
    print(f"  {'any control':20s} {fired_total:3d}/{n_total:<3d} {fired_total / n_total:5.0%}")
    if _ZONED:
        print("calibration: a threshold on p_adjusted, controls firing and plants kept")
        n_hits = len(hit_p)
        for cut in (1e-4, 1e-3, 5e-3, 1e-2, 3e-2, 5e-2):
            fp = sum(p <= cut for p in control_p)
            kept = sum(p <= cut for p in hit_p)
            print(
                f"  p_adjusted <= {cut:<7g} controls {fp:3d}/{n_total:<3d} {fp / n_total:5.1%}"
                f"   planted found {kept:3d}/{n_hits}"
            )
    print(f"time zones passed to the detectors: {_ZONED}; took {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
