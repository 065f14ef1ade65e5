"""The ``dropprice`` command line.

Each group of commands lives in its own module under ``service/commands/`` and
exposes ``register(app)``; this module only wires them together.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="dropprice",
    help="Dynamic pricing engine for limited drops.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main() -> None:
    """dropprice: micro-event intensity, elasticity fits and price surfaces served from Redis."""


@app.command()
def version() -> None:
    """Print the installed dropprice version."""
    from importlib.metadata import version as dist_version

    typer.echo(dist_version("dropprice"))


def _register_commands() -> None:
    # One import per command module; each adds its commands to ``app``.
    from service.commands import config as config_commands

    config_commands.register(app)
    from service.commands import refit as refit_commands

    refit_commands.register(app)
    from service.commands import loadtest as loadtest_commands

    loadtest_commands.register(app)
    from service.commands import serve as serve_commands

    serve_commands.register(app)
    from service.commands import experiment, signals

    signals.register(app)
    experiment.register(app)
    from service.commands import simulate as simulate_commands

    simulate_commands.register(app)
    from service.commands import demo as demo_commands

    demo_commands.register(app)
    pass


_register_commands()

if __name__ == "__main__":
    app()
