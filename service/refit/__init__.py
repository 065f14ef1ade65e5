"""One re-fit: events in Redis -> a new, validated price-surface version live.

A re-fit runs as six timed stages; each one's duration and facts go to the re-fit
record (``GET /v1/admin/refits/{id}``), the progress display and the metrics:

======== =====================================================================
stage    what it does
======== =====================================================================
panel    take the lock; read the events not yet acknowledged (consumer group
         ``refit``: entries left pending by a crashed worker first, then new
         ones); merge them into the retained event history, de-duplicated by
         ``event_id``; build the hourly panel (:mod:`service.panel`)
intensity the 24-72 h micro-event index (:func:`pricing.intensity.build_intensity_index`)
         joined onto the panel
fit      :func:`pricing.model.fit_elasticity` on every (SKU, market) at once,
         warm-started from the live version's fit, with the category priors of
         ``categories.yaml``; then the parameter checks (below) and the
         held-out check (below)
solve    per drop: the SKU's ladder (guardrail ladder, else a grid between floor
         and ceiling), units left now, the periods left in the current or next
         window, demand rates from the fit and the intensity forecast;
         :func:`pricing.policy.solve_surfaces` then
         :func:`pricing.guardrails.apply_guardrails`
validate every published cell finite, positive, inside floor/ceiling/cost; the
         price change against the live price beyond the approval band is held
         for an operator
publish  the fit and the event history are saved (only while this worker still
         holds the lock), the lock is re-checked and extended, then
         :meth:`service.store.PriceStore.publish_surfaces` switches the version
         live; only then are the events acknowledged
======== =====================================================================

The fit's intensity regressor is the exogenous part of the index, centred per pair
(:mod:`service.refit.exogenous`). The parameter checks and the held-out check that end
the ``fit`` stage are described in :mod:`service.refit.fitting`: a rejected held-out
check publishes nothing, the re-fit ends ``no_change`` with the reason.

Crash safety and fencing
------------------------
- **Lock with a fencing token.** ``dp:{_refit}:lock`` holds ``"<token> <owner>"``
  with a TTL; the token comes from a counter that only increases. Every write of
  the re-fit (fit, history, approvals) is a Lua script that succeeds only while the
  lock still holds *this* token, and the lock is re-checked and extended right
  before the surfaces are switched live. The publish itself is fenced: the store
  registers the new version (numbered from an increasing publish counter) in one
  script that also checks the lock still holds this token (the registry shares the
  lock's ``{_refit}`` hash slot), and the per-SKU switches run only after that and
  refuse to move a SKU back to a lower number than its live one. A worker whose lock
  expired (a long pause) therefore never publishes: it fails with
  :class:`~service.exceptions.FenceLost`, and one paused after registering cannot go
  back over a newer version (:class:`~service.exceptions.PublishSuperseded`).
- **Acknowledge after publish.** Events are acknowledged only after the version is
  live. A worker killed before that leaves them pending; the next re-fit reads the
  pending entries first (same consumer name) and merges them into the history,
  where ``event_id`` de-duplication makes a re-read count once.
- **Nothing new, nothing published.** A re-fit that reads no event (and is not
  forced) ends ``no_change``: two workers started together publish one version.

Keys: every key is in the ``{_refit}`` hash slot, built by :mod:`service.keys` and read
and written by :class:`service.store.refit_state.RefitState` (so its scripts are
single-slot on a cluster).

Modules: :mod:`~service.refit.run` (the orchestration, :class:`Refitter`),
:mod:`~service.refit.exogenous` (the intensity regressor), :mod:`~service.refit.fitting`
(fit, parameter and held-out checks), :mod:`~service.refit.solve` (surfaces and their
validation), :mod:`~service.refit.devices`, :mod:`~service.refit.progress` (reporters,
metrics); the stream decoder is :func:`service.codec.events_frame`, the drop calendar
:mod:`service.drops`, the sharded solve and fit merge :mod:`pricing.sharding`.

Example:
    >>> live = live_config(store, seed_dir="configs")  # doctest: +SKIP
    >>> refitter = Refitter(store, live.bundle, config_version=live.version)  # doctest: +SKIP
    >>> record = refitter.run()  # doctest: +SKIP
    >>> record.state, record.version  # doctest: +SKIP
    ('published', 'v20261205T170000Z-f12')
"""

from service.drops import drop_horizon, guardrail_spec, sku_ladder
from service.refit.devices import describe_devices, select_devices
from service.refit.progress import LogReporter, Reporter
from service.refit.run import CONSUMER, REFIT_GROUP, STAGES, Refitter
from service.store.refit_state import Approval, RefitRecord, RefitState, StageTiming

__all__ = [
    "CONSUMER",
    "REFIT_GROUP",
    "STAGES",
    "Approval",
    "LogReporter",
    "RefitRecord",
    "RefitState",
    "Refitter",
    "Reporter",
    "StageTiming",
    "describe_devices",
    "drop_horizon",
    "guardrail_spec",
    "select_devices",
    "sku_ladder",
]
