"""``dropprice explain``, ``preview``, ``approvals``, ``audit``: the operator API on the CLI.

Each reads the running system's Redis (the embedded one of ``dropprice serve``'s data
folder, or ``--redis-url``) and its live config, and calls the same functions as the
HTTP routes (:mod:`service.operator_tools`, :func:`service.audit.read_audit`)::

    dropprice explain CMX-VAR-001
    dropprice preview CMX-VAR-002 --set guardrails.floor=24.99 --plot preview.png
    dropprice approvals                              # pending ones
    dropprice approvals approve a20261205-1 --as "Dana Reyes" --note "checked the queue"
    dropprice audit --kind refit --limit 20
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from service.commands.redis_option import (
    DEFAULT_DATA_DIR,
    FROM_DATA_DIR,
    DataDirOpt,
    RedisUrlOpt,
)

__all__ = ["parse_settings", "register"]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
MarketOpt = Annotated[
    str | None, typer.Option("--market", help="Market (needed when the SKU sells in several).")
]

approvals_app = typer.Typer(
    help="Price changes a re-fit held beyond the approval band: list, approve, reject.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _open(redis_url: str) -> tuple[Any, Any]:
    """The store and the live config bundle; exit 2 saying why when either is missing."""
    from service.config.versions import ConfigStore
    from service.exceptions import StoreUnavailable
    from service.store import PriceStore, connect

    store = PriceStore(connect(redis_url, timeout=30.0))
    try:
        store.ping()
        live = ConfigStore(store).live()
    except StoreUnavailable as exc:
        store.close()
        typer.echo(f"error: cannot reach Redis at {redis_url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if live is None:
        store.close()
        typer.echo(
            "error: no config is live in this Redis: start `dropprice serve` (it stores its "
            "startup configs) or run `dropprice config apply configs/`",
            err=True,
        )
        raise typer.Exit(2)
    return store, live.bundle


def _refused(exc: Exception, code: int = 1) -> typer.Exit:
    # The shared messages name the API's query parameter; on the CLI it is an option.
    typer.echo(f"error: {str(exc).replace('?market=', '--market')}", err=True)
    return typer.Exit(code)


def _money(x: Any) -> str:
    return "-" if x is None else f"{float(x):,.2f}"


# -- explain -----------------------------------------------------------------------------


def explain(
    sku: Annotated[str, typer.Argument(help="The SKU to explain.")],
    market: MarketOpt = None,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """The price served now and why: surface cell, guardrail, elasticity, intensity, time."""
    from service.config.whatif import NoLiveSurface
    from service.exceptions import UnknownMarket, UnknownSku
    from service.operator_tools import explain_price, served_now

    store, bundle = _open(redis_url)
    try:
        view = served_now(store, bundle, sku, market)
        out = explain_price(store, bundle, view)
    except (UnknownSku, UnknownMarket, NoLiveSurface) as exc:
        raise _refused(exc) from exc
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    typer.echo(_explain_text(out))


def _explain_text(out: dict[str, Any]) -> str:
    served, cell, el = out["served"], out["surface"], out["elasticity"]
    time_left, intensity = out["time_left"], out["intensity"]
    bound = out["bound_by"]
    rail = out["guardrails"].get(bound) if bound else None
    lines = [
        f"{out['sku']} @ {out['market']}: {served['price']:.2f} {served['currency']} "
        f"({served['source']}, version {served['version']})",
        f"  bound by:     {bound or 'nothing (the optimum)'}"
        + (f" = {rail}" if rail is not None and not isinstance(rail, list) else ""),
        f"  surface cell: {cell['cell']['units_left']} units left, period {cell['cell']['period']}"
        f" of {cell['period_seconds']} s from {cell['period_start']}",
        f"  units left:   {out['units_left']}; periods left {time_left['periods_left']}"
        + (
            f", window closes in {time_left['seconds_left']:.0f} s"
            if time_left.get("seconds_left") is not None
            else ""
        ),
        f"  elasticity:   {_fmt(el['beta'])}"
        + (
            f" (95 % {_fmt(el['interval95'][0])} .. {_fmt(el['interval95'][1])})"
            if el.get("interval95")
            else ""
        )
        + (" [fallback: the fit was out of range]" if el.get("replaced") else ""),
        f"  intensity:    {_fmt(intensity['now'])} now ({intensity['source']}), "
        f"{_fmt(intensity['at_publish'])} when solved",
        "  optimum:      "
        + ", ".join(f"{k} {_money(v)}" for k, v in sorted(out["optimum"].items())),
    ]
    lines += [f"  - {r}" for r in out["reasons"]]
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{float(x):.3g}"


# -- preview -----------------------------------------------------------------------------


def parse_settings(assignments: list[str]) -> dict[str, Any]:
    """``["guardrails.floor=24.99", "elasticity=-1.2"]`` -> the nested preview body.

    Values are read as YAML scalars or lists (``24.99``, ``[24.99, 29.99]``, ``null``).

    Raises:
        typer.BadParameter: an assignment without ``=`` or with an empty path.
    """
    body: dict[str, Any] = {}
    for item in assignments:
        path, sep, raw = item.partition("=")
        parts = [p for p in path.strip().split(".") if p]
        if not sep or not parts:
            raise typer.BadParameter(
                f"expected FIELD=VALUE (e.g. guardrails.floor=24.99), got {item!r}",
                param_hint="--set",
            )
        node = body
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise typer.BadParameter(f"{path!r} sets inside a value", param_hint="--set")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return body


def preview(
    sku: Annotated[str, typer.Argument(help="The SKU to preview.")],
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="A change to try, FIELD=VALUE: guardrails.floor=24.99, elasticity=-1.2, "
            "list_price=21.99, units_left=30, category_prior.mean=-1.2 ... (repeatable; "
            "none: re-solve as published).",
        ),
    ] = None,
    market: MarketOpt = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write live vs candidate prices to this PNG.")
    ] = None,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """What a change would do: the re-solved surface and expected outcome from now,
    against the live one. Nothing is published."""
    from pydantic import ValidationError

    from service.config.whatif import NoLiveSurface
    from service.exceptions import UnknownMarket, UnknownSku
    from service.operator_tools import PreviewIn, preview_price

    settings = settings or []
    fields = parse_settings(settings)
    if market is not None:
        fields["market"] = market
    try:
        body = PreviewIn.model_validate(fields)
    except ValidationError as exc:
        for err in exc.errors():
            where = ".".join(str(x) for x in err["loc"])
            typer.echo(f"error: --set {where}: {err['msg']}", err=True)
        raise typer.Exit(2) from exc
    store, bundle = _open(redis_url)
    try:
        out = preview_price(store, bundle, sku, body)
    except (UnknownSku, UnknownMarket, NoLiveSurface, ValueError) as exc:
        raise _refused(exc) from exc
    finally:
        store.close()
    if plot is not None:
        _plot_preview(out, plot)
    if as_json:
        typer.echo(json.dumps(out, default=str))
        return
    typer.echo(_preview_text(out, settings))
    if plot is not None:
        typer.echo(f"plot: {plot}")


def _preview_text(out: dict[str, Any], settings: list[str]) -> str:
    live, cand, delta = out["live"], out["candidate"], out["delta"]
    rows = [
        ("price now", live["price_now"], cand["price_now"], delta["price_now"]),
        ("expected revenue", live["expected_revenue"], cand["expected_revenue"],
         delta["expected_revenue"]),
        ("expected units sold", live["expected_units_sold"], cand["expected_units_sold"],
         cand["expected_units_sold"] - live["expected_units_sold"]),
        ("sell-through", live["sell_through"], cand["sell_through"], delta["sell_through"]),
    ]  # fmt: skip
    lines = [
        f"{out['sku']} @ {out['market']}: {', '.join(settings) or 'no change'} (nothing published)",
        f"  {'':<20} {'live':>12} {'candidate':>12} {'change':>12}",
    ]
    for name, a, b, d in rows:
        lines.append(f"  {name:<20} {a:>12,.2f} {b:>12,.2f} {d:>+12,.2f}")
    lines.append(
        f"  candidate bound by {cand['bound_by'] or 'nothing'}; elasticity "
        f"{cand['elasticity']:.3g} ({cand['elasticity_source']})"
    )
    lines += [f"  - {n}" for n in out["notes"]]
    return "\n".join(lines)


def _plot_preview(out: dict[str, Any], path: Path) -> None:
    """Live and candidate price against units left, in the current period."""
    from service.extras import require

    require("matplotlib", "plots", "--plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, part in (("live", out["live"]), ("candidate", out["candidate"])):
        surface = part["surface"]
        t = min(part["period_now"], len(surface[0]) - 1) if surface else 0
        ax.step(range(len(surface)), [row[t] for row in surface], where="post", label=name)
    ax.axvline(out["live"]["units_now"], color="grey", linestyle=":", label="units left now")
    ax.set_xlabel("units left")
    ax.set_ylabel("price, current period")
    ax.set_title(f"{out['sku']} @ {out['market']}: preview")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# -- approvals ---------------------------------------------------------------------------


@approvals_app.callback()
def approvals(
    ctx: typer.Context,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """Pending approvals (with no sub-command), or approve/reject one as a named person."""
    ctx.obj = {"redis_url": redis_url, "json": as_json}
    if ctx.invoked_subcommand is None:
        _list_approvals(redis_url, as_json)


@approvals_app.command("list")
def list_approvals(ctx: typer.Context) -> None:
    """Pending approvals, newest first."""
    _list_approvals(ctx.obj["redis_url"], ctx.obj["json"])


def _list_approvals(redis_url: str, as_json: bool) -> None:
    from service.refit import RefitState

    store, _ = _open(redis_url)
    try:
        pending = RefitState(store).pending_approvals()
    finally:
        store.close()
    if as_json:
        for a in pending:
            typer.echo(json.dumps(a.to_dict(), default=str))
        return
    if not pending:
        typer.echo("no pending approvals")
        return
    for a in pending:
        typer.echo(f"{a.id}  re-fit {a.refit_id}  held {a.created_at}")
        for c in a.changes:
            typer.echo(
                f"    {c['sku']} @ {c['market']}: {c['live_price']:.2f} -> {c['new_price']:.2f} "
                f"({c['change_pct']:+.1f} %, band {c['band_pct']:g} %)"
            )


AsOpt = Annotated[
    str,
    typer.Option("--as", help="The person deciding (recorded as decided_by and in the audit)."),
]
NoteOpt = Annotated[str, typer.Option("--note", help="Why, kept with the decision.")]
SkuOpt = Annotated[
    list[str] | None, typer.Option("--sku", help="Approve only these SKUs' changes (repeatable).")
]


@approvals_app.command("approve")
def approve(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="The approval's id.")],
    person: AsOpt,
    note: NoteOpt = "",
    skus: SkuOpt = None,
) -> None:
    """Publish held price changes as a new version, in the name of ``--as``."""
    _decide(ctx, approval_id, approve=True, person=person, note=note, skus=skus)


@approvals_app.command("reject")
def reject(
    ctx: typer.Context,
    approval_id: Annotated[str, typer.Argument(help="The approval's id.")],
    person: AsOpt,
    note: NoteOpt = "",
) -> None:
    """Discard held price changes, in the name of ``--as``."""
    _decide(ctx, approval_id, approve=False, person=person, note=note, skus=None)


def _decide(
    ctx: typer.Context,
    approval_id: str,
    *,
    approve: bool,
    person: str,
    note: str,
    skus: list[str] | None,
) -> None:
    from service.exceptions import ApprovalNotFound, RefitLocked
    from service.operator_tools import decide_approval

    if not person.strip():
        raise typer.BadParameter("name the person deciding", param_hint="--as")
    store, bundle = _open(ctx.obj["redis_url"])
    try:
        approval = decide_approval(
            store,
            bundle,
            approval_id,
            approve=approve,
            person=person,
            note=note,
            skus=skus or None,
            owner=f"cli:{os.environ.get('USER', 'operator')}",
        )
    except ApprovalNotFound as exc:
        raise _refused(exc) from exc
    except RefitLocked as exc:
        raise _refused(exc, code=75) from exc  # EX_TEMPFAIL: try again shortly
    finally:
        store.close()
    if ctx.obj["json"]:
        typer.echo(json.dumps(approval.to_dict(), default=str))
        return
    done = f"published as {approval.version}" if approval.version else "nothing published"
    typer.echo(f"{approval.id} {approval.status} by {approval.decided_by}: {done}")


# -- audit -------------------------------------------------------------------------------


def audit(
    since: Annotated[
        str | None,
        typer.Option(help="ISO 8601 time with zone, epoch ms, or an audit id (records after it)."),
    ] = None,
    kind: Annotated[
        str | None, typer.Option(help="Kind or prefix: config, surface, refit, ...")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="Most records shown.")] = 100,
    redis_url: RedisUrlOpt = FROM_DATA_DIR,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    as_json: JsonOpt = False,
) -> None:
    """The append-only audit log, oldest first: config changes, publishes, rollbacks,
    approvals, each with who and when."""
    from service.audit import read_audit
    from service.store import PriceStore, connect

    store = PriceStore(connect(redis_url, timeout=30.0))
    try:
        records = read_audit(store, since=since, kind=kind, limit=limit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    finally:
        store.close()
    if as_json:
        for r in records:
            typer.echo(json.dumps(r.to_dict(), default=str))
        return
    if not records:
        typer.echo("no audit records" + (f" of kind {kind!r}" if kind else ""))
        return
    typer.echo(f"{'at (UTC)':<20} {'kind':<18} {'actor':<28} detail")
    for r in records:
        detail = ", ".join(f"{k}={v}" for k, v in r.detail.items() if v not in (None, "", []))
        typer.echo(f"{r.at:%Y-%m-%d %H:%M:%S}  {r.kind:<18} {r.actor:<28} {detail[:120]}")


def register(app: typer.Typer) -> None:
    """Add ``explain``, ``preview``, ``approvals`` and ``audit`` to the CLI."""
    app.command("explain")(explain)
    app.command("preview")(preview)
    app.add_typer(approvals_app, name="approvals")
    app.command("audit")(audit)
