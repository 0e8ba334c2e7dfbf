"""The remote commands of ``lure``, which drive a running server over HTTP: the whole CLI of the
light client (``pip install ./client``), and the part of the server's ``lure`` that needs no
torch."""

from __future__ import annotations

import typer

from lure_client import labels, remote

REMOTE_COMMANDS = (
    remote.create,
    remote.push,
    remote.predict,
    remote.versions,
    remote.watch,
    remote.promote,
    remote.audit,
    remote.configure,
)


def add_remote_commands(app: typer.Typer) -> typer.Typer:
    """Attach every command that talks to a server to ``app`` (the server's CLI adds its own)."""
    app.add_typer(remote.jobs_app, name="jobs")
    app.add_typer(remote.megabatches_app, name="megabatches")
    app.command("import")(remote.import_)
    app.command("export")(remote.export)
    app.command("label-queue")(labels.label_queue)
    app.command("feedback")(labels.feedback)
    for command in REMOTE_COMMANDS:
        app.command(command.__name__)(command)
    return app


def run(app: typer.Typer) -> None:
    """Run ``app`` with one clear line when the server cannot be reached."""
    import httpx

    try:
        app()
    except httpx.TransportError as error:
        typer.echo(
            f"error: cannot reach the LURE server ({type(error).__name__}: {error}); is it "
            "running (`lure up`), and do --url / LURE_URL point at it?",
            err=True,
        )
        raise SystemExit(2) from None


app = add_remote_commands(
    typer.Typer(help="LURE client: drive a LURE update server over HTTP.", no_args_is_help=True)
)


def main() -> None:
    """The light client's ``lure`` console script."""
    run(app)
