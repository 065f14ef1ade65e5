"""The ``dropprice`` command line.

Each group of commands lives in its own module under ``service/commands/`` and
exposes ``register(app)``; this module only wires them together.
"""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(
    name="dropprice",
    help="Dynamic pricing engine for limited drops.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


def _installed_version() -> str:
    from importlib.metadata import version as dist_version

    return dist_version("dropprice")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(_installed_version())
        raise typer.Exit()


@app.callback()
def main(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the installed dropprice version and exit.",
        ),
    ] = False,
) -> None:
    """dropprice: micro-event intensity, elasticity fits and price surfaces served from Redis."""


@app.command()
def version() -> None:
    """Print the installed dropprice version."""
    typer.echo(_installed_version())


def _register_commands() -> None:
    # Command modules import their heavy dependencies (jax, pandas) inside the commands,
    # so importing them all here keeps ``dropprice --help`` fast.
    from service.commands import (
        config,
        deadletters,
        demo,
        experiment,
        loadtest,
        operator,
        plan_stock,
        refit,
        serve,
        signals,
        simulate,
    )

    for module in (
        serve,
        config,
        refit,
        operator,
        simulate,
        loadtest,
        demo,
        signals,
        experiment,
        deadletters,
        plan_stock,
    ):
        module.register(app)
    from service.commands import model

    model.register(app)


_register_commands()

if __name__ == "__main__":
    app()
