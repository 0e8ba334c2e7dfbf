"""`lure backup` covers the embedded default only; on PostgreSQL or object storage it refuses,
saying what to use instead, and writes nothing."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from service.cli.main import app


@pytest.mark.parametrize(
    ("variable", "value", "advice"),
    [
        ("LURE_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1:1/db", "pg_dump"),
        ("LURE_BLOB_URL", "s3://bucket/prefix", "aws s3 sync"),
    ],
)
def test_backup_refuses_what_it_cannot_copy_and_names_the_tool(
    tmp_path, monkeypatch, variable, value, advice
):
    monkeypatch.setenv(variable, value)
    target = tmp_path / "backup"
    result = CliRunner().invoke(app, ["backup", str(target), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code != 0
    assert advice in result.output
    assert not target.exists()
