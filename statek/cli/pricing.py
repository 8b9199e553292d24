"""PLACEHOLDER: `statek pricing ...` commands."""

import typer

app = typer.Typer(help="pricing commands", no_args_is_help=True)


@app.command("placeholder")
def placeholder() -> None:
    """Not built yet."""
