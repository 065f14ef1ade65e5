"""``dropprice loadtest``: hold the checkout rush, or say why not.

One command answers the question the team asks before a drop. It

1. seeds a drop of its own (SKUs unique to the run, a window open now, inventory
   small enough that the popular SKUs sell out): with no ``--host`` it starts a
   private ``redis-server`` (:mod:`service.embedded`) and ``dropprice serve`` on
   it as a uvicorn subprocess, with the drop in a temporary config folder and
   price surfaces published through :meth:`service.store.PriceStore.publish_surfaces`;
   with ``--host`` it creates the drop through the operator API
   (``PUT /v1/drops/{id}``, ``--operator-key``, using a category and markets of
   the live config) and deletes it afterwards; no surfaces are published there
   (a publish moves the service's live version, which rollbacks follow), so its
   prices are the list prices (``source: base``);
2. runs locust headless as a subprocess (``locust -f loadtests/locustfile.py
   --headless --csv ... --html ...``) with the ``rush`` or ``soak`` shape;
3. checks the books (:mod:`loadtests.books`): nothing oversold, inventory moved
   by exactly the accepted sales, each accepted sale once in the events stream,
   no 5xx;
4. prints a verdict table (per route: requests, failures, p50/p95/p99, req/s),
   PASS/FAIL per SLO and per book check, writes everything to ``--report-dir``
   (``locust.html``, ``locust_stats.csv``, ``locust_stats_history.csv``,
   ``verdict.json``, ``locust.log``, ``service.log``) and exits 1 on any FAIL;
5. adds the service's own latency per route, from its ``/metrics`` request
   histogram scraped before and after the run (:mod:`loadtests.serverside`), so
   time lost in the load generator or to a busy machine can be told apart.

Exit codes: 0 PASS, 1 FAIL, 2 the run could not be judged (no service, no stats).

Latency SLOs (``p50_ms``, ``p95_ms``, ``p99_ms``) hold for every route and for the
total; ``error_rate`` is failures over requests; ``min_rps`` the total requests/s.

The locustfile is ``locustfile.py`` of the ``loadtests`` package installed with
dropprice (locust imports it by path, and it imports its neighbours as
``loadtests.*``); ``--locustfile`` or ``DROPPRICE_LOCUSTFILE`` point elsewhere.

The package's modules: :mod:`~service.commands.loadtest.stats` (reading locust's CSVs,
judging the SLOs), :mod:`~service.commands.loadtest.running` (the service under test,
the seeded drop, locust itself), :mod:`~service.commands.loadtest.report` (the verdict
tables) and :mod:`~service.commands.loadtest.command` (the command).
"""

from __future__ import annotations

from service.commands.loadtest.command import register
from service.commands.loadtest.running import _wait_ready as _wait_ready
from service.commands.loadtest.running import find_locustfile
from service.commands.loadtest.stats import (
    SHAPE_NAMES,
    SLO_KEYS,
    TOTAL,
    Peak,
    RouteStats,
    SloResult,
    evaluate_slos,
    parse_duration,
    parse_slos,
    read_locust_stats,
    read_peak,
)

__all__ = [
    "SHAPE_NAMES",
    "SLO_KEYS",
    "TOTAL",
    "Peak",
    "RouteStats",
    "SloResult",
    "evaluate_slos",
    "find_locustfile",
    "parse_duration",
    "parse_slos",
    "read_locust_stats",
    "read_peak",
    "register",
]
