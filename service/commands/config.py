"""``dropprice config ...``: validate, schema, diff, apply, history, rollback.

Examples::

    dropprice config validate configs/                  # every error, file:line path: msg
    dropprice config validate configs/drops/ny-popup.yaml
    dropprice config schema drop > drop.schema.json     # for editor autocompletion
    dropprice config diff configs/                      # against `dropprice serve` here
    dropprice config diff configs/ --impact             # and what it does to prices
    dropprice config diff configs/ --redis-url redis://10.0.0.5:6379/0
    dropprice config apply configs/ --actor alice --note "raise variant floor"
    dropprice config history
    dropprice config rollback --to 3

``diff``/``apply`` compare against the live config in Redis: a directory replaces
the whole config, ``defaults.yaml``/``categories.yaml`` replace that part, and a
drop file adds or replaces one drop. The Redis URL comes from ``--redis-url`` or
``DROPPRICE_REDIS_URL``, else it is the embedded Redis of the ``dropprice serve``
running on ``--data-dir`` (default ``.dropprice/redis``); the actor from ``--actor``,
``DROPPRICE_ACTOR`` or the login name.
"""

from __future__ import annotations

import getpass
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from service.commands.redis_option import (
    DEFAULT_DATA_DIR,
    FROM_DATA_DIR,
    DataDirOpt,
    RedisUrlOpt,
)

__all__ = ["register"]

config_app = typer.Typer(
    name="config",
    help="Validate operator configs, print their JSON Schema, diff and apply them live.",
    no_args_is_help=True,
)


class SchemaKind(StrEnum):
    drop = "drop"
    defaults = "defaults"
    categories = "categories"
    bundle = "bundle"


PathsArg = Annotated[
    list[Path],
    typer.Argument(help="Config directories, defaults.yaml/categories.yaml, or drop files."),
]
ActorOpt = Annotated[
    str | None,
    typer.Option("--actor", envvar="DROPPRICE_ACTOR", help="Who makes the change (audit)."),
]


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return os.environ.get("USER") or "unknown"


def _client(redis_url: str) -> Any:
    from service.store import connect

    return connect(redis_url, timeout=5.0)


def _print_issues(issues: Any) -> None:
    for issue in issues:
        typer.echo(str(issue), err=True)
    typer.echo(f"{len(issues)} error(s)", err=True)


@config_app.command("validate")
def validate(
    paths: PathsArg,
    output: Annotated[
        str, typer.Option("--format", help="text (file:line path: message) or json.")
    ] = "text",
) -> None:
    """Check config files; print every error at once (exit 1 if any)."""
    from service.config.loader import load_paths

    result = load_paths(paths)
    if output == "json":
        typer.echo(json.dumps({"ok": result.ok, "errors": [i.to_dict() for i in result.issues]}))
        raise typer.Exit(0 if result.ok else 1)
    if not result.ok:
        _print_issues(result.issues)
        raise typer.Exit(1)
    bundle = result.bundle
    assert bundle is not None
    typer.echo(
        f"ok: {len(bundle.drops)} drop(s), {bundle.sku_count} SKU(s), "
        f"{len(bundle.categories.categories)} categories, "
        f"{len(bundle.defaults.markets)} market(s) listed"
    )


@config_app.command("schema")
def schema(
    kind: Annotated[
        SchemaKind, typer.Argument(help="Which file the schema describes.")
    ] = SchemaKind.drop,
) -> None:
    """Print the JSON Schema of a config file (generated from the pydantic models)."""
    from service.config.schema import config_schema

    typer.echo(json.dumps(config_schema(kind.value), indent=2))


def _load_against_live(paths: list[Path], redis_url: str) -> tuple[Any, Any, Any]:
    from service.config.loader import load_paths
    from service.config.versions import ConfigStore

    client = _client(redis_url)
    store = ConfigStore(client)
    live = store.live()
    result = load_paths(paths, base=live.bundle if live is not None else None)
    if not result.ok:
        _print_issues(result.issues)
        raise typer.Exit(1)
    return store, live, result.bundle


@config_app.command("diff")
def diff(
    paths: PathsArg,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    impact: Annotated[
        bool,
        typer.Option(
            "--impact",
            help="Also re-solve the affected SKUs with the live fit: price now and expected "
            "revenue per SKU, before and after.",
        ),
    ] = False,
) -> None:
    """Show what applying PATHS would change in the live config (and, with --impact,
    in the prices)."""
    from service.config.diff import diff_bundles

    store, live, bundle = _load_against_live(paths, redis_url)
    changes = diff_bundles(live.bundle if live is not None else None, bundle)
    where = f"live config version {live.version}" if live is not None else "no live config"
    if not changes:
        typer.echo(f"no changes against {where}")
        return
    typer.echo(f"against {where}:")
    for change in changes:
        typer.echo(str(change))
    if impact:
        # The surfaces and fits live in the price store (the same Redis).
        _print_impact(store.prices, live.bundle if live is not None else None, bundle)


def _print_impact(store: Any, live: Any, bundle: Any) -> None:
    from service.config.impact import config_impact

    rows = config_impact(store, live, bundle)
    typer.echo("")
    if not rows:
        typer.echo("impact: no SKU's pricing inputs change")
        return
    typer.echo(f"impact on {len(rows)} SKU-market(s), re-solved with the live fit from now:")
    for row in rows:
        typer.echo(f"  {row.line()}")
    changes = [r.expected_revenue[1] - r.expected_revenue[0] for r in rows if r.expected_revenue]
    if changes:
        typer.echo(f"  expected revenue change over the re-solved SKUs: {sum(changes):+,.2f}")


@config_app.command("apply")
def apply(
    paths: PathsArg,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    actor: ActorOpt = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept in the audit).")] = None,
    expect_version: Annotated[
        int | None,
        typer.Option("--expect-version", help="Refuse unless this version is live (0: none)."),
    ] = None,
) -> None:
    """Apply PATHS as a new live config version (audited; picked up without restart)."""
    from service.exceptions import ConfigConflict

    store, live, bundle = _load_against_live(paths, redis_url)
    try:
        result = store.apply(
            bundle,
            actor=_actor(actor),
            expect_version=(
                expect_version
                if expect_version is not None
                else (live.version if live is not None else 0)
            ),
            note=note,
        )
    except ConfigConflict as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not result.changed:
        typer.echo(f"no changes: version {result.version} stays live")
        return
    for change in result.changes:
        typer.echo(str(change))
    typer.echo(f"applied: config version {result.version} is live (audit {result.audit_id})")


@config_app.command("history")
def history(
    redis_url: RedisUrlOpt = FROM_DATA_DIR, data_dir: DataDirOpt = DEFAULT_DATA_DIR
) -> None:
    """List kept config versions, newest first: who, when, what and why (the note)."""
    from service.config.versions import ConfigStore

    store = ConfigStore(_client(redis_url))
    live = store.live_version()
    versions = store.list_versions()
    if not versions:
        typer.echo("no config version stored yet (`dropprice serve` stores its startup configs)")
        return
    notes = store.notes()
    typer.echo(f"  {'ver':>4}  {'applied (UTC)':<25} {'actor':<20} {'kind':<16} summary / note")
    for v in versions:
        mark = "*" if v.version == live else " "
        typer.echo(
            f"{mark} {v.version:>4}  {v.at.isoformat(timespec='seconds'):<25} {v.actor:<20} "
            f"{v.kind:<16} {v.summary}"
        )
        if notes.get(v.version):
            typer.echo(f"{'':<70}note: {notes[v.version]}")
    typer.echo("* live")


@config_app.command("rollback")
def rollback(
    to: Annotated[
        int | None, typer.Option("--to", help="Version to restore (default: the previous).")
    ] = None,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    actor: ActorOpt = None,
) -> None:
    """Restore an earlier config version as a new version (audited)."""
    from service.config.versions import ConfigStore
    from service.exceptions import ConfigConflict, ConfigError

    store = ConfigStore(_client(redis_url))
    try:
        result = store.rollback(actor=_actor(actor), to_version=to)
    except (ConfigError, ConfigConflict) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for change in result.changes:
        typer.echo(str(change))
    typer.echo(f"rolled back: config version {result.version} is live")


def register(app: typer.Typer) -> None:
    """Add the ``config`` command group to the ``dropprice`` CLI."""
    app.add_typer(config_app, name="config")
