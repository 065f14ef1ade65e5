"""``dropprice refit``, ``worker``, ``rollback``, ``versions``: learn and publish between windows.

Examples::

    dropprice refit --config-dir configs/         # the Redis of `dropprice serve` here
    dropprice refit --redis-url redis://10.0.0.5:6379/0 --config-dir configs/
    dropprice refit --device gpu                  # force the GPU (fails if JAX sees none)
    dropprice worker --metrics-port 9108          # scheduler loop + operator requests
    dropprice versions                            # kept versions with their fit summary
    dropprice rollback                            # back to the version before the live one
    dropprice rollback --to v20261205T170000-f12
    dropprice worker --compile-cache /var/cache/dropprice-jax   # or 'off'

``refit`` and ``worker`` keep JAX's compiled programs in a persistent cache
(:mod:`service.compile_cache`; default ``.dropprice/jax-cache``), so a restarted
worker loads the fit instead of compiling it again.

On a terminal progress is drawn with rich (one line per stage with its timing); when
the output is not a terminal (or with ``--json``) every stage and the final record
are JSON lines on stdout. Exit codes: 0 done (published, held for approval or
nothing new), 1 failed, 3 another worker held the lock.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.commands.redis_option import (
    DEFAULT_DATA_DIR,
    FROM_DATA_DIR,
    DataDirOpt,
    RedisUrlOpt,
)

if TYPE_CHECKING:
    from service.refit import RefitRecord, Refitter

__all__ = ["register"]

ConfigDirOpt = Annotated[
    Path,
    typer.Option(
        "--config-dir",
        envvar="DROPPRICE_CONFIG_DIR",
        help="Operator configs (defaults.yaml, categories.yaml, drops/) to seed an empty "
        "Redis with. Once a config version is live in Redis (PUT /v1/drops, `dropprice "
        "config apply`) re-fits run on it and these files are not read.",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option("--device", help="JAX device: auto (JAX's default), cpu or gpu."),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="JSON lines even on a terminal."),
]
LockTtlOpt = Annotated[
    float,
    typer.Option("--lock-ttl", min=1.0, help="Seconds the re-fit lock outlives a crashed worker."),
]
CompileCacheOpt = Annotated[
    str | None,
    typer.Option(
        "--compile-cache",
        envvar="DROPPRICE_COMPILE_CACHE",
        help="Folder of JAX's persistent compilation cache (a restarted worker loads the "
        "compiled fit instead of compiling it again); 'off' to disable. Default: JAX's "
        "configured folder, else .dropprice/jax-cache.",
    ),
]


def _emit(obj: Mapping[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


class JsonLinesReporter:
    """Progress as one JSON object per line on stdout (for logs and pipelines)."""

    def stage_started(self, name: str) -> None:
        _emit({"event": "stage_started", "stage": name, "ts": datetime.now(UTC).isoformat()})

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        _emit({"event": "stage", "stage": name, "seconds": round(seconds, 4), **detail})

    def note(self, message: str, **fields: Any) -> None:
        _emit({"event": "note", "msg": message, **fields})


class RichReporter:
    """Progress on a terminal: a spinner on the running stage, a line per finished one."""

    def __init__(self) -> None:
        from rich.console import Console

        self.console = Console(stderr=False)
        self._status: Any = None

    def stage_started(self, name: str) -> None:
        self._status = self.console.status(f"[bold]{name}[/bold] ...")
        self._status.start()

    def stage_finished(self, name: str, seconds: float, detail: Mapping[str, Any]) -> None:
        if self._status is not None:
            self._status.stop()
        facts = ", ".join(f"{k}={v}" for k, v in detail.items())
        self.console.print(f"[green]✓[/green] {name:<9} {seconds:8.3f} s  [dim]{facts}[/dim]")

    def note(self, message: str, **fields: Any) -> None:
        if self._status is not None:
            self._status.stop()
        facts = ", ".join(f"{k}={v}" for k, v in fields.items() if v not in (None, [], ""))
        self.console.print(f"[cyan]•[/cyan] {message}  [dim]{facts}[/dim]")


def _reporter(as_json: bool) -> Any:
    return JsonLinesReporter() if as_json or not sys.stdout.isatty() else RichReporter()


def _connect(redis_url: str) -> Any:
    from service.store import PriceStore, connect

    store = PriceStore(connect(redis_url, timeout=30.0))
    _ping(store, redis_url)
    return store


def _live_config(store: Any, config_dir: Path, *, required: bool) -> Any:
    """The live config version in Redis; ``config_dir`` only seeds an empty Redis.

    Exit 2 when the seed files are invalid, or (``required``) when Redis holds no
    version and there is nothing to seed it with.
    """
    from service.config.versions import live_config
    from service.exceptions import ConfigError

    try:
        live = live_config(store, config_dir, actor=f"{_owner()} (--config-dir seed)")
    except ConfigError as exc:
        store.close()
        typer.echo(f"no config is live in Redis and {config_dir} is invalid:\n{exc}", err=True)
        raise typer.Exit(2) from exc
    if live is None and required:
        store.close()
        typer.echo(
            f"no config is live in Redis and there is no config folder at {config_dir} to seed "
            "it with: create a drop (PUT /v1/drops/{id}), run `dropprice config apply`, or pass "
            "--config-dir",
            err=True,
        )
        raise typer.Exit(2)
    return live


def _owner() -> str:
    import socket

    return f"{os.environ.get('USER', 'cli')}@{socket.gethostname()}"


def _ping(store: Any, redis_url: str) -> None:
    """Exit 2 with a plain message when Redis does not answer."""
    from service.embedded import redact_url
    from service.exceptions import StoreUnavailable

    try:
        store.ping()
    except StoreUnavailable as exc:
        store.close()
        typer.echo(
            f"cannot reach Redis at {redact_url(redis_url)}: {exc}. Start the service "
            "(dropprice serve) "
            "or pass --redis-url / DROPPRICE_REDIS_URL",
            err=True,
        )
        raise typer.Exit(2) from exc


def _make_refitter(
    redis_url: str, config_dir: Path, device: str, reporter: Any, lock_ttl: float = 30.0
) -> Refitter:
    from service.refit import Refitter

    store = _connect(redis_url)
    live = _live_config(store, config_dir, required=True)
    store.keep_versions = live.bundle.defaults.keep_versions
    reporter.note("config", version=live.version, digest=live.digest)
    return Refitter(
        store,
        live.bundle,
        config_version=live.version,
        device=device,
        reporter=reporter,
        lock_ttl_s=lock_ttl,
    )


def _finish(record: RefitRecord, as_json: bool) -> None:
    if as_json or not sys.stdout.isatty():
        _emit({"event": "refit", **record.to_dict()})
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"re-fit {record.id}: {record.state}")
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        for s in record.stages:
            table.add_row(s.name, f"{s.seconds:.3f}")
        table.add_row("total", f"{record.total_seconds:.3f}")
        console = Console()
        console.print(table)
        console.print(f"device {record.device}, version {record.version or '-'}")
        for reason in record.reasons:
            console.print(f"  - {reason}")


def _compile_cache(setting: str | None, reporter: Any) -> None:
    """Enable the persistent compilation cache before anything compiles (exit 2 if unusable)."""
    from service.compile_cache import enable_compile_cache

    try:
        path = enable_compile_cache(setting)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    reporter.note("compile cache", dir=str(path) if path else "off")


def _note_cache(reporter: Any) -> None:
    from service.compile_cache import cache_stats

    stats = cache_stats()
    if stats.directory is not None:
        reporter.note(
            "compile cache used", dir=stats.directory, hits=stats.hits, misses=stats.misses
        )


def _exit_code(record: RefitRecord) -> int:
    return {"failed": 1, "locked": 3}.get(record.state, 0)


def refit(
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    config_dir: ConfigDirOpt = Path("configs"),
    device: DeviceOpt = "auto",
    force: Annotated[bool, typer.Option("--force", help="Publish even with no new event.")] = False,
    during_window: Annotated[
        bool, typer.Option("--during-window", help="Also re-fit drops whose window is open.")
    ] = False,
    as_json: JsonOpt = False,
    lock_ttl: LockTtlOpt = 30.0,
    compile_cache: CompileCacheOpt = None,
) -> None:
    """Run one re-fit now: events -> panel -> intensity -> fit -> solve -> validate -> publish."""
    from service.exceptions import FenceLost

    reporter = _reporter(as_json)
    _compile_cache(compile_cache, reporter)
    refitter = _make_refitter(redis_url, config_dir, device, reporter, lock_ttl)
    try:
        record = refitter.run(trigger="manual", force=force, allow_during_window=during_window)
    except FenceLost as exc:
        typer.echo(f"re-fit discarded: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        refitter.store.close()
    _note_cache(reporter)
    _finish(record, as_json)
    raise typer.Exit(_exit_code(record))


def worker(
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    config_dir: ConfigDirOpt = Path("configs"),
    device: DeviceOpt = "auto",
    poll_seconds: Annotated[
        float, typer.Option("--poll-seconds", help="How often to check requests and schedule.")
    ] = 2.0,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics on this port.")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    as_json: JsonOpt = False,
    lock_ttl: LockTtlOpt = 30.0,
    compile_cache: CompileCacheOpt = None,
) -> None:
    """Run the re-fit scheduler: on window close, at the cadence, and on operator request."""
    import threading

    from service.worker import run_worker

    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    reporter = _reporter(as_json)
    _compile_cache(compile_cache, reporter)
    stop = threading.Event()

    from service.config.models import ConfigBundle
    from service.config.versions import ConfigStore
    from service.refit import Refitter as _Refitter

    store = _connect(redis_url)
    _live_config(store, config_dir, required=False)
    configs = ConfigStore(store)
    current: dict[str, Any] = {"version": None, "bundle": ConfigBundle()}

    def make() -> Refitter:
        # One Redis client for the whole loop; the live config version is read each
        # tick, so a drop created or a guardrail changed over the API (or with
        # `dropprice config apply`) reaches the next re-fit.
        version = configs.live_version()
        if version is not None and version != current["version"]:
            loaded = configs.get(version)
            if loaded is not None:  # evicted in between: the next tick catches up
                current["version"], current["bundle"] = loaded.version, loaded.bundle
                reporter.note("config", version=loaded.version, digest=loaded.digest)
        elif version is None and current["version"] is None:
            reporter.note("no config is live in Redis yet; nothing to re-fit")
        bundle: ConfigBundle = current["bundle"]
        store.keep_versions = bundle.defaults.keep_versions
        return _Refitter(
            store,
            bundle,
            config_version=current["version"],
            device=device,
            reporter=reporter,
            lock_ttl_s=lock_ttl,
        )

    def on_record(record: RefitRecord) -> None:
        _note_cache(reporter)
        _finish(record, as_json)
        if once:
            stop.set()

    try:
        if once:
            refitter = make()
            request = refitter.state.pop_request()
            record = refitter.run(record_id=request, trigger="request" if request else "manual")
            on_record(record)
            raise typer.Exit(_exit_code(record))
        run_worker(make, poll_seconds=poll_seconds, stop=stop, on_record=on_record)
    finally:
        store.close()


def rollback(
    to: Annotated[str | None, typer.Option("--to", help="Version to serve again.")] = None,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    actor: Annotated[str | None, typer.Option("--actor", envvar="DROPPRICE_ACTOR")] = None,
) -> None:
    """Switch the live prices back to a kept version (default: the one before the live one)."""
    from service.audit import record_audit
    from service.rollback import rollback_whole
    from service.store import PriceStore, connect

    store = PriceStore(connect(redis_url, timeout=30.0))
    _ping(store, redis_url)
    try:
        before = store.live_version()
        try:
            _, result = rollback_whole(store, to)  # refuses, listing what would stay
        except ValueError as exc:
            typer.echo(f"cannot roll back: {exc}", err=True)
            raise typer.Exit(2) from exc
        who = actor or os.environ.get("USER", "cli")
        record_audit(
            store,
            "surface.rollback",
            who,
            {"from": before, "to": result.version, "surfaces": result.surfaces},
        )
    finally:
        store.close()
    typer.echo(f"live version {before} -> {result.version} ({result.surfaces} surfaces)")


def versions(
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """List the kept surface versions, newest first, with their fit summary."""
    from service.store import PriceStore, connect

    store = PriceStore(connect(redis_url, timeout=30.0))
    _ping(store, redis_url)
    try:
        infos = store.list_versions()
    finally:
        store.close()
    rows = [
        {
            "version": v.version,
            "live": v.live,
            "status": v.status,
            "published_at": v.published_at.isoformat(),
            "surfaces": len(v.pairs),
            "refit_id": v.meta.get("refit_id"),
            "device": v.meta.get("device"),
            "fit": v.meta.get("fit", {}),
            "approval_id": v.meta.get("approval_id"),
        }
        for v in infos
    ]
    if as_json or not sys.stdout.isatty():
        for row in rows:
            _emit(row)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="surface versions")
    for col in ("version", "live", "published", "surfaces", "median β", "converged", "refit"):
        table.add_column(col)
    for row in rows:
        fit = row["fit"] or {}
        med = fit.get("median_elasticity")
        table.add_row(
            row["version"],
            "●" if row["live"] else "",
            row["published_at"][:19],
            str(row["surfaces"]),
            f"{med:.3f}" if isinstance(med, float) else "-",
            f"{fit.get('converged', '-')}/{fit.get('rows', '-')}",
            str(row["refit_id"] or "-"),
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``refit``, ``worker``, ``rollback`` and ``versions`` to the CLI."""
    app.command("refit")(refit)
    app.command("worker")(worker)
    app.command("rollback")(rollback)
    app.command("versions")(versions)
