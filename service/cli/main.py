"""Entry point of the ``lure`` console script."""

from __future__ import annotations

import typer

from service.cli import backup, bench, keys, labels, remote, server

app = typer.Typer(help="LURE: keep a deployed image classifier fresh.", no_args_is_help=True)
app.add_typer(bench.app, name="bench")
app.add_typer(keys.app, name="keys")
app.add_typer(remote.jobs_app, name="jobs")
app.add_typer(remote.megabatches_app, name="megabatches")
app.command("up")(server.up)
app.command("api")(server.api)
app.command("worker")(server.worker)
app.command("backup")(backup.backup_command)
app.command("restore")(backup.restore_command)
app.command("import")(remote.import_)
app.command("export")(remote.export)
app.command("label-queue")(labels.label_queue)
app.command("feedback")(labels.feedback)
for command in (
    remote.create,
    remote.push,
    remote.predict,
    remote.versions,
    remote.watch,
    remote.promote,
    remote.audit,
    remote.configure,
):
    app.command(command.__name__)(command)


def main() -> None:
    """The console script: ``app`` with one clear line when the server cannot be reached."""
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


if __name__ == "__main__":
    main()
