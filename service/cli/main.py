"""Entry point of the server's ``lure`` console script: the light client's remote commands
(``lure_client.cli``) plus the commands that run or administer a server on this machine."""

from __future__ import annotations

import typer

from lure_client.cli import add_remote_commands, run
from lure_engine.bench_cli import app as bench_app
from service.cli import backup, keys, server

app = typer.Typer(help="LURE: keep a deployed image classifier fresh.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(keys.app, name="keys")
app.command("up")(server.up)
app.command("api")(server.api)
app.command("worker")(server.worker)
app.command("backup")(backup.backup_command)
app.command("restore")(backup.restore_command)
add_remote_commands(app)


def main() -> None:
    """The console script: ``app`` with one clear line when the server cannot be reached."""
    run(app)


if __name__ == "__main__":
    main()
