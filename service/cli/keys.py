"""``lure keys create|list|revoke``: manage API keys directly in the server's database."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from lure_client.errors import fail
from lure_core.api_keys import SCOPES, create_key, revoke_key
from lure_core.database import make_engine, make_session_factory, upgrade_database
from lure_core.records import ApiKeyRow
from service.settings import ServerSettings

app = typer.Typer(
    help="API keys (scopes: ingest, predict, admin; optionally limited to some models).",
    no_args_is_help=True,
)
DATA_DIR = typer.Option(
    None, help="The server's data folder (LURE_DATA_DIR); LURE_DATABASE_URL wins."
)


def _sessions(data_dir: Path | None):
    settings = ServerSettings(**({"data_dir": data_dir} if data_dir else {}))
    settings.ensure_dirs()
    upgrade_database(settings.resolved_database_url)
    return make_session_factory(make_engine(settings.resolved_database_url))


@app.command("create")
def create(
    name: str = typer.Option(..., help="Who or what uses the key."),
    scope: list[str] = typer.Option(
        ..., "--scope", help=f"Repeat for several: {', '.join(SCOPES)}."
    ),
    model: list[str] = typer.Option(
        None,
        "--model",
        help="Limit the key to this model, or to names starting with a prefix ending in '*' "
        "(team-a-*); repeat for several. Without it (or with --all-models): every model.",
    ),
    all_models: bool = typer.Option(
        False, "--all-models", help="Say it outright: the key reaches every model."
    ),
    data_dir: Path = DATA_DIR,
) -> None:
    """Create a key; it is printed once (stdout) and only its hash is stored."""
    if all_models and model:
        raise fail("--all-models and --model contradict each other: give one")
    try:
        with _sessions(data_dir).begin() as session:
            key, row = create_key(session, name, scope, list(model) if model else None)
    except ValueError as error:
        raise fail(str(error)) from None
    reach = f"models {', '.join(row.models)}" if row.models is not None else "every model"
    typer.echo(
        f"created key {row.prefix} '{name}' with scopes {', '.join(row.scopes)} for {reach}; "
        "store it now, it is not shown again:",
        err=True,
    )
    typer.echo(key)


@app.command("list")
def list_keys(data_dir: Path = DATA_DIR) -> None:
    """Every key (never its secret): prefix, name, scopes, models, created, revoked."""
    table = Table(title="API keys")
    for column in ("prefix", "name", "scopes", "models", "created", "revoked"):
        table.add_column(column)
    with _sessions(data_dir)() as session:
        for row in session.scalars(select(ApiKeyRow).order_by(ApiKeyRow.id)):
            table.add_row(
                row.prefix,
                row.name,
                ",".join(row.scopes),
                ",".join(row.models) if row.models is not None else "all",
                f"{row.created_at:%Y-%m-%d %H:%M}",
                f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
            )
    Console(width=120).print(table)


@app.command("revoke")
def revoke(
    prefix: str = typer.Argument(..., help="The key's prefix (from `lure keys list`)."),
    data_dir: Path = DATA_DIR,
) -> None:
    """Revoke a key by its prefix; API processes refuse it within LURE_KEY_CACHE_SECONDS."""
    with _sessions(data_dir).begin() as session:
        row = revoke_key(session, prefix)
    if row is None:
        raise fail(f"no key with prefix {prefix!r}")
    typer.echo(f"revoked key {prefix} '{row.name}'")
