"""Entry point of the ``lure`` console script."""

from __future__ import annotations

import typer

from service.cli import bench, server

app = typer.Typer(help="LURE: keep a deployed image classifier fresh.", no_args_is_help=True)
app.add_typer(bench.app, name="bench")
app.command("up")(server.up)
app.command("api")(server.api)
app.command("worker")(server.worker)

if __name__ == "__main__":
    app()
