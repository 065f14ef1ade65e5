"""``dropprice signals``: the micro-event feed and archetype detections, for analysts.

Examples::

    dropprice signals                                  # detections of the last 24 h (table)
    dropprice signals --since 7d --json > feed.json    # the whole feed as JSON
    dropprice signals --since 2026-12-01T00:00Z --csv --table index > index.csv
    dropprice signals --since 7d --export-dir dma/ --format parquet
    dropprice signals --events events.parquet --lookups lookups.csv --since 72h  # offline

Reads the events the service recorded (``--redis-url``) or an events file (CSV or
Parquet with ``ts, type, sku, market, quantity, unit_price, reach, count, creator``).
``--export-dir`` writes one folder per market ("DMA") with its hourly index per SKU,
its hourly roll-up and its detections, plus ``detections.<ext>`` for all markets.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from service.commands.redis_option import (
    DEFAULT_DATA_DIR,
    FROM_DATA_DIR,
    DataDirOpt,
    LazyRedisUrlOpt,
    resolve_or_exit,
)

__all__ = ["parse_when", "read_events_file", "register"]

_RELATIVE = re.compile(r"^(\d+)\s*([hdw])$")


def parse_when(text: str | None, *, now: datetime) -> datetime | None:
    """``24h``, ``7d``, ``1w`` (that long before ``now``) or a zoned ISO 8601 timestamp.

    Raises:
        typer.BadParameter: anything else, naming what was received.
    """
    if text is None:
        return None
    m = _RELATIVE.match(text.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        hours = {"h": 1, "d": 24, "w": 168}[unit] * n
        return now - timedelta(hours=hours)
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"expected a duration like 24h, 7d, 2w or a zoned ISO time like "
            f"2026-12-01T00:00:00Z, got {text!r}"
        ) from None
    if ts.tzinfo is None:
        raise typer.BadParameter(f"the time needs a zone (e.g. ...Z or +01:00), got {text!r}")
    return ts


def read_events_file(path: Path, *, time_column: str = "ts") -> Any:
    """A table from CSV or Parquet with its ``time_column`` parsed to UTC."""
    import pandas as pd

    if not path.exists():
        raise typer.BadParameter(f"events file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        from service.extras import require

        require("pyarrow", "parquet", "reading .parquet files")
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".gz"):
        frame = pd.read_csv(path)
    else:
        raise typer.BadParameter(f"events file must be .csv or .parquet, got {path.name}")
    if time_column not in frame.columns:
        raise typer.BadParameter(f"{path}: no {time_column!r} column, got {list(frame.columns)}")
    frame[time_column] = pd.to_datetime(frame[time_column], utc=True, format="ISO8601")
    return frame


def _flat_detections(detections: list[dict[str, Any]]) -> Any:
    import pandas as pd

    rows = []
    for d in detections:
        row = {k: d[k] for k in ("archetype", "market", "sku", "creator", "score", "detected_at")}
        row["evidence_windows"] = len(d["evidence"])
        row.update({f"stat_{k}": v for k, v in d["stats"].items()})
        rows.append(row)
    cols = ["archetype", "market", "sku", "creator", "score", "detected_at", "evidence_windows"]
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=cols)


def _index_frame(feed: dict[str, Any]) -> Any:
    import pandas as pd

    rows = [
        {"sku": r["sku"], "market": r["market"], "hour": r["hour"], "intensity": r["intensity"]}
        | {f"component_{k}": v for k, v in r["components"].items()}
        for r in feed["index"]
    ]
    return pd.DataFrame(rows, columns=None if rows else ["sku", "market", "hour", "intensity"])


def _markets_frame(feed: dict[str, Any]) -> Any:
    import pandas as pd

    cols = ["market", "hour", "intensity", "intensity_mean", "intensity_max", "n_skus"]
    return pd.DataFrame(feed["markets"], columns=cols)


def _write(frame: Any, path: Path, fmt: str) -> Path:
    out = path.with_suffix(f".{fmt}")
    if fmt == "parquet":
        from service.extras import require

        require("pyarrow", "parquet", "--format parquet")
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    return out


def export_by_market(feed: dict[str, Any], directory: Path, fmt: str = "csv") -> list[Path]:
    """One folder per market (DMA): ``index``, ``rollup``, ``detections`` files.

    Returns the paths written. A detection without a market (a creator's lift over
    every market) goes to the folder of every market its evidence names.
    """
    directory.mkdir(parents=True, exist_ok=True)
    index, markets, det = _index_frame(feed), _markets_frame(feed), feed["detections"]
    written = [_write(_flat_detections(det), directory / "detections", fmt)]
    names = sorted(
        set(index["market"]) | set(markets["market"]) | {d["market"] for d in det if d["market"]}
    )
    for market in names:
        folder = directory / _safe(market)
        folder.mkdir(exist_ok=True)
        written.append(_write(index[index["market"] == market], folder / "index", fmt))
        written.append(_write(markets[markets["market"] == market], folder / "rollup", fmt))
        mine = [d for d in det if _names_market(d, market)]
        written.append(_write(_flat_detections(mine), folder / "detections", fmt))
    return written


def _names_market(d: dict[str, Any], market: str) -> bool:
    if d["market"] is not None:
        return bool(d["market"] == market)
    return any(
        e["detail"].get("markets") is None or market in e["detail"]["markets"]
        for e in d["evidence"]
    )


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def register(app: typer.Typer) -> None:
    """Add ``dropprice signals`` to ``app``."""

    @app.command("signals")
    def signals(
        since: Annotated[
            str | None,
            typer.Option(help="First hour shown: 24h, 7d (before --until) or a zoned ISO time."),
        ] = None,
        until: Annotated[
            str | None, typer.Option(help="Last hour shown (default now); same forms.")
        ] = None,
        market: Annotated[str | None, typer.Option(help="Only this market.")] = None,
        as_csv: Annotated[bool, typer.Option("--csv", help="CSV of --table on stdout.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="The whole feed as JSON.")] = False,
        table: Annotated[
            str, typer.Option(help="What --csv and the terminal show: detections, index, markets.")
        ] = "detections",
        export_dir: Annotated[
            Path | None,
            typer.Option("--export-dir", help="Write one folder per market (DMA) here."),
        ] = None,
        fmt: Annotated[
            str, typer.Option("--format", help="Export format: csv or parquet.")
        ] = "csv",
        events_file: Annotated[
            Path | None,
            typer.Option("--events", help="Read events from this CSV/Parquet, not Redis."),
        ] = None,
        lookups_file: Annotated[
            Path | None,
            typer.Option(
                "--lookups", help="Price look-ups CSV/Parquet (hour, sku, market, lookups, price)."
            ),
        ] = None,
        redis_url: LazyRedisUrlOpt = FROM_DATA_DIR,
        data_dir: DataDirOpt = DEFAULT_DATA_DIR,
        history_hours: Annotated[
            int, typer.Option(min=24, max=90 * 24, help="Hours of events the detectors read.")
        ] = 21 * 24,
        window_hours: Annotated[
            int, typer.Option(min=24, max=72, help="The index's rolling window.")
        ] = 72,
    ) -> None:
        """Micro-event index per SKU-market and market, and archetype detections.

        Detections: regional spikes, creator-led sells and edge acceleration, each with
        its score, evidence windows and time.
        """
        from service.signal_feed import MAX_SPAN_HOURS, build_feed, load_events

        if as_csv and as_json:
            raise typer.BadParameter("choose one of --csv and --json")
        if table not in ("detections", "index", "markets"):
            raise typer.BadParameter(f"--table must be detections, index or markets, got {table!r}")
        if fmt not in ("csv", "parquet"):
            raise typer.BadParameter(f"--format must be csv or parquet, got {fmt!r}")
        now = datetime.now(UTC)
        until_ts = parse_when(until, now=now) or now
        # A relative --since counts back from --until (7d = the week before it).
        since_ts = parse_when(since, now=until_ts) or until_ts - timedelta(hours=24)
        span = (until_ts - since_ts).total_seconds() / 3600
        if not 0 <= span <= MAX_SPAN_HOURS:
            raise typer.BadParameter(
                f"--since must be before --until and at most {MAX_SPAN_HOURS} h earlier, "
                f"got since={since_ts.isoformat()} until={until_ts.isoformat()}"
            )
        lookups = None
        if lookups_file is not None:
            lookups = read_events_file(lookups_file, time_column="hour")
        if events_file is not None:
            events = read_events_file(events_file)
        else:
            from service.signal_feed import load_store_lookups
            from service.store import PriceStore, connect

            store = PriceStore(connect(resolve_or_exit(redis_url, data_dir), timeout=5.0))
            try:
                lead = max(history_hours, span + window_hours)
                events = load_events(store, since=until_ts - timedelta(hours=lead))
                if lookups is None:
                    lookups = load_store_lookups(store)
            finally:
                store.close()
        feed = build_feed(
            events,
            since=since_ts,
            until=until_ts,
            market=market,
            window_hours=window_hours,
            history_hours=history_hours,
            lookups=lookups,
        )
        if export_dir is not None:
            paths = export_by_market(feed, export_dir, fmt)
            typer.echo(f"wrote {len(paths)} files under {export_dir}", err=True)
        if as_json:
            sys.stdout.write(json.dumps(feed, default=str) + "\n")
            return
        frame = {
            "detections": lambda: _flat_detections(feed["detections"]),
            "index": lambda: _index_frame(feed),
            "markets": lambda: _markets_frame(feed),
        }[table]()
        if as_csv:
            frame.to_csv(sys.stdout, index=False)
            return
        _print_table(
            frame, title=f"{table} {since_ts:%Y-%m-%d %H:%M} → {until_ts:%Y-%m-%d %H:%M} UTC"
        )
        for note in feed["not_judged"]:
            subject = " ".join(f"{k}={note[k]}" for k in ("market", "sku", "creator") if note[k])
            typer.echo(
                f"not judged: {note['archetype']} {subject} {note['reason']} "
                f"(needs {note['needs']})".replace("  ", " "),
                err=True,
            )


def _print_table(frame: Any, *, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    shown = frame.head(200)
    t = Table(title=title)
    for col in shown.columns:
        t.add_column(str(col))
    for row in shown.itertuples(index=False):
        t.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console = Console()
    console.print(t)
    if len(frame) > len(shown):
        console.print(f"... {len(frame) - len(shown)} more rows (use --csv or --export-dir)")
