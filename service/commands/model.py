"""``dropprice model validate``: held-out scores of the demand model on a panel.

Examples::

    dropprice model validate sales.csv
    dropprice model validate oj.parquet --sku-col brand --market-col store \\
        --period-col week --covariate deal --covariate feature --holdout-periods 20 --json

The panel's latest periods are held out; the default fit, the per-row Poisson GLM with
the same terms and each row's mean are fitted on the rest and scored on them by mean
Poisson deviance (:func:`pricing.validation.compare_models`, the same function a
notebook calls).

Exit codes: 0 scored, 2 bad input (missing file or column, bad values, too few periods).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["register"]

model_app = typer.Typer(help="Check the demand model on a sales panel.", no_args_is_help=True)


def _read_panel(path: Path, period: str) -> pd.DataFrame:
    """A ``.csv`` or ``.parquet`` panel; a text period column is parsed as datetimes."""
    import pandas as pd

    from pricing.exceptions import InputError

    if not path.is_file():
        raise InputError(f"panel file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        panel = pd.read_csv(path)
    elif suffix == ".parquet":
        from service.extras import require

        require("pyarrow", "parquet", "reading .parquet files")
        panel = pd.read_parquet(path)
    else:
        raise InputError(f"panel must be a .csv or .parquet file, got {path.name!r}")
    if period in panel.columns and not pd.api.types.is_numeric_dtype(panel[period]):
        try:
            panel[period] = pd.to_datetime(panel[period])
        except (ValueError, TypeError) as exc:
            raise InputError(
                f"column {period!r} must be numbers or datetimes, got values like "
                f"{panel[period].iloc[0]!r}"
            ) from exc
    return panel


@model_app.command("validate")
def validate(
    panel_path: Annotated[Path, typer.Argument(metavar="PANEL", help="A .csv or .parquet panel.")],
    sku_col: Annotated[str, typer.Option(help="Column naming the SKU.")] = "sku",
    market_col: Annotated[
        str | None, typer.Option(help="Column naming the market (a row per SKU x market).")
    ] = None,
    period_col: Annotated[str, typer.Option(help="Period column (numbers or datetimes).")] = (
        "period"
    ),
    price_col: Annotated[str, typer.Option(help="Price column (> 0).")] = "price",
    quantity_col: Annotated[str, typer.Option(help="Units sold column (>= 0).")] = "quantity",
    covariate: Annotated[
        list[str] | None, typer.Option(help="A covariate column (repeat for several).")
    ] = None,
    category_col: Annotated[
        str | None, typer.Option(help="Column with each SKU's category (pooling groups).")
    ] = None,
    intensity_col: Annotated[str | None, typer.Option(help="Intensity column.")] = None,
    sold_out_col: Annotated[
        str | None, typer.Option(help="Boolean column, true where the period sold out.")
    ] = None,
    shared_covariates: Annotated[
        bool,
        typer.Option(
            "--shared-covariates",
            help="One effect per covariate for all rows [default: per row, pooled by category].",
        ),
    ] = False,
    holdout_periods: Annotated[
        int | None,
        typer.Option(min=1, help="Latest distinct periods held out [default: 15 % of them]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the scores as JSON.")] = False,
) -> None:
    """Score the default fit against the per-row GLM and the naive mean on held-out periods."""
    from pricing.exceptions import InputError
    from pricing.validation import compare_models

    try:
        panel = _read_panel(panel_path, period_col)
        result = compare_models(
            panel,
            sku=sku_col,
            market=market_col,
            period=period_col,
            price=price_col,
            quantity=quantity_col,
            intensity=intensity_col,
            covariates=tuple(covariate or ()),
            sold_out=sold_out_col,
            categories=category_col,
            holdout_periods=holdout_periods,
            per_row_covariates=not shared_covariates,
        )
    except InputError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=1))
    else:
        typer.echo(str(result))


def register(app: typer.Typer) -> None:
    """Add the ``dropprice model`` group to ``app``."""
    app.add_typer(model_app, name="model")
