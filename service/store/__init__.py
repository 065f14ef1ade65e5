"""All Redis access of dropprice: one package, one key module, one folder of scripts.

- :mod:`service.store.prices`: :class:`PriceStore` (catalogue, inventory), with its
  parts :mod:`~service.store.events` (event streams, dead letters) and
  :mod:`~service.store.versions` (publishing and reading surface versions);
- :mod:`service.store.client`: :func:`connect` and the domain error for an
  unreachable Redis; :mod:`service.store.records`: the values read and written;
- :mod:`service.store.refit_state`: :class:`RefitState`, what the re-fit keeps
  besides the surfaces (lock and fence, records, history, fits, approvals);
- :mod:`service.store.cells`: :func:`cell`, the surface cell at (units left, now);
- :mod:`service.store.configs`: the operator config versions, live pointer and channel;
  :mod:`service.store.audit_log`: the audit stream;
- :mod:`service.keys`: every key and channel, one named builder each
  (``docs/redis-layout.md`` documents them, a test keeps the two in step);
- ``service/lua/``: every Lua script the store runs (:func:`service.store.scripts.load`).

Nothing outside this package touches a Redis client's commands directly
(``tests/test_structure.py`` checks it).
"""

from service.store.client import (
    ClusterClient,
    RedisClient,
    connect,
    connect_async,
    is_cluster,
    unavailable_as_domain_error,
)
from service.store.prices import PriceStore, client_of
from service.store.records import (
    DeadLetter,
    EventKind,
    EventOutcome,
    EventRecord,
    PublishResult,
    SkuMeta,
    StreamEvent,
    SurfaceRecord,
    VersionInfo,
)

__all__ = [
    "ClusterClient",
    "DeadLetter",
    "EventKind",
    "EventOutcome",
    "EventRecord",
    "PriceStore",
    "PublishResult",
    "RedisClient",
    "SkuMeta",
    "StreamEvent",
    "SurfaceRecord",
    "VersionInfo",
    "client_of",
    "connect",
    "connect_async",
    "is_cluster",
    "unavailable_as_domain_error",
]
