"""``dropprice serve`` (run the price service) and ``dropprice api-key new``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer

from service.commands.shutdown import exit_on_signals

__all__ = ["register"]


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="uvicorn worker processes.")] = 1,
    redis_url: Annotated[
        str | None,
        typer.Option(
            help="redis://host:port/db or redis+cluster://host:port. Omitted: start a "
            "private persistent redis-server under --data-dir and stop it on exit.",
            envvar="DROPPRICE_REDIS_URL",
        ),
    ] = None,
    cluster: Annotated[
        bool, typer.Option("--cluster", help="Treat --redis-url as a Redis Cluster node.")
    ] = False,
    config_dir: Annotated[
        Path, typer.Option(help="Operator configs (defaults, categories, drops/).")
    ] = Path("configs"),
    data_dir: Annotated[
        Path,
        typer.Option(
            help="Data folder of the embedded Redis (append-only file, password, lock); "
            "refit, config and worker find the server by it.",
        ),
    ] = Path(".dropprice/redis"),
    redis_port: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=65535,
            help="Port of the embedded Redis. Default: one derived from the data "
            "folder's path (20000-29999), the same on every run.",
        ),
    ] = None,
    dev: Annotated[
        bool,
        typer.Option("--dev", help="Development only: no API keys, every caller is admin."),
    ] = False,
    compile_cache: Annotated[
        str | None,
        typer.Option(
            "--compile-cache",
            envvar="DROPPRICE_COMPILE_CACHE",
            help="JAX persistent compilation cache of the workers (operator previews); "
            "'off' to disable. Default: JAX's configured folder, else .dropprice/jax-cache.",
        ),
    ] = None,
) -> None:
    """Run the price service (FastAPI + Redis) until interrupted.

    Configs and settings are validated first; each worker seeds inventory for
    configured SKUs that have no counter in Redis yet (live counters are never
    overwritten). Without --redis-url the service runs its own persistent Redis under
    --data-dir (locked against a second serve, password in a mode-0600 file) and
    restarts it if it dies; the workers exit if this process dies.
    """
    import uvicorn
    from pydantic import ValidationError

    from service.config.loader import load_config_dir
    from service.embedded import PASSWORD_FILE, EmbeddedRedis
    from service.exceptions import ConfigError, RedisServerError
    from service.settings import Settings

    if config_dir.is_dir():
        try:
            bundle = load_config_dir(config_dir)
        except ConfigError as exc:
            typer.echo("invalid configs:\n" + "\n".join(exc.errors), err=True)
            raise typer.Exit(2) from exc
        typer.echo(
            f"configs: {len(bundle.drops)} drop(s), "
            f"{sum(len(d.skus) for d in bundle.drops)} SKU(s) from {config_dir}",
            err=True,
        )
    else:
        typer.echo(f"no config folder at {config_dir}: serving no SKUs", err=True)
    env = {"DROPPRICE_CONFIG_DIR": str(config_dir)}
    if cluster:
        env["DROPPRICE_REDIS_CLUSTER"] = "true"
    if dev:
        env["DROPPRICE_AUTH_DISABLED"] = "true"
    os.environ.update(env)
    # Settings (API keys above all) are checked before any Redis starts: a refusal
    # leaves nothing behind.
    try:
        Settings()
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            typer.echo(f"settings: {_settings_message(err)}", err=True)
        raise typer.Exit(2) from exc
    from service.compile_cache import enable_compile_cache

    try:  # exported, so every uvicorn worker process compiles into the same folder
        enable_compile_cache(compile_cache, export=True)
    except ValueError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    # uvicorn stops gracefully on SIGTERM and then raises it again; unhandled, that
    # would end this process before the embedded Redis is stopped and the data
    # folder unlocked. As an exception it unwinds the stack below (exit status 0).
    with exit_on_signals(signal.SIGTERM, exit_code=0), contextlib.ExitStack() as stack:
        if redis_url is None:
            embedded = EmbeddedRedis(
                data_dir, port=redis_port, log=lambda line: typer.echo(line, err=True)
            )
            try:
                stack.enter_context(embedded)
            except RedisServerError as exc:
                typer.echo(str(exc), err=True)
                raise typer.Exit(1) from exc
            redis_url = embedded.url
            typer.echo(
                f"embedded redis-server at {embedded.display_url}, data in "
                f"{embedded.data_dir} (password in {embedded.data_dir / PASSWORD_FILE})",
                err=True,
            )
        os.environ["DROPPRICE_REDIS_URL"] = redis_url
        if config_dir.is_dir():  # stored as a version, so `config diff` compares with it
            from service.config.versions import seed_startup_config

            typer.echo(
                seed_startup_config(
                    redis_url, config_dir, cluster=cluster, actor="dropprice serve"
                ),
                err=True,
            )
        # Workers watch this pid and exit when the master dies (no orphans on the port).
        os.environ["DROPPRICE_SERVE_PID"] = str(os.getpid())
        if workers > 1:
            # /metrics on any worker reports every worker (prometheus-client's
            # multiprocess mode; each worker writes its values to files here).
            from service.metrics import prepare_multiprocess_dir

            metrics_dir = prepare_multiprocess_dir(data_dir.resolve() / "metrics")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        uvicorn.run(
            "service.commands.serve:worker_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_config=None,
            access_log=False,
            lifespan="on",
            server_header=False,  # no "server: uvicorn" on every answer
            proxy_headers=False,  # nothing here uses the client's address
        )


def _settings_message(err: Mapping[str, Any]) -> str:
    """A settings error in its own words (pydantic prefixes a validator's with "Value error, ")."""
    cause = err.get("ctx", {}).get("error")
    if isinstance(cause, ValueError):
        return str(cause)
    return str(err["msg"])


def worker_app() -> Any:
    """The app factory of each uvicorn worker: the service app, tied to its master.

    A worker process of ``serve --workers N`` (a child of the pid in
    ``DROPPRICE_SERVE_PID``) exits when that master dies, so a SIGKILLed ``serve``
    leaves no worker holding the port; a single-process ``serve`` is its own master.
    """
    from service.app import create_app
    from service.embedded import exit_with_parent

    if os.environ.get("DROPPRICE_SERVE_PID") == str(os.getppid()):
        exit_with_parent()
    return create_app()


def new_key(
    role: Annotated[str, typer.Option(help="pos, operator or admin.")] = "pos",
) -> None:
    """Print a new random API key and the DROPPRICE_API_KEYS entry for it.

    Give the key to the client; put only the digest in the service's settings.
    """
    from service.auth import hash_api_key, new_api_key
    from service.settings import Role

    try:
        parsed = Role(role)
    except ValueError as exc:
        raise typer.BadParameter(
            f"role must be one of {[r.value for r in Role]}, got {role!r}"
        ) from exc
    key = new_api_key()
    typer.echo(f"key:    {key}")
    typer.echo(f"digest: {hash_api_key(key)}")
    typer.echo(f"DROPPRICE_API_KEYS='{json.dumps({hash_api_key(key): parsed.value})}'")


def register(app: typer.Typer) -> None:
    app.command()(serve)
    keys_app = typer.Typer(help="API keys (stored hashed).", no_args_is_help=True)
    keys_app.command("new")(new_key)
    app.add_typer(keys_app, name="api-key")
