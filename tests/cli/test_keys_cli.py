from typer.testing import CliRunner

from service.cli.main import app


def test_keys_create_list_and_revoke(tmp_path):
    runner, data = CliRunner(), str(tmp_path / "data")
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--name",
            "ci",
            "--scope",
            "ingest",
            "--scope",
            "predict",
            "--data-dir",
            data,
        ],
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    prefix = key.split("_")[1]
    assert key.startswith("lure_") and len(key) > 40
    listed = runner.invoke(app, ["keys", "list", "--data-dir", data])
    assert (
        prefix in listed.stdout and "ingest,predict" in listed.stdout and key not in listed.stdout
    )
    assert runner.invoke(app, ["keys", "revoke", prefix, "--data-dir", data]).exit_code == 0
    again = runner.invoke(app, ["keys", "revoke", "nope", "--data-dir", data])
    assert again.exit_code == 2 and "no key with prefix 'nope'" in again.stderr
    bad = runner.invoke(
        app, ["keys", "create", "--name", "x", "--scope", "root", "--data-dir", data]
    )
    assert bad.exit_code == 2 and "scopes must be among" in bad.stderr


def test_keys_create_limits_a_key_to_models_and_every_command_has_help(tmp_path):
    runner, data = CliRunner(), str(tmp_path / "data")
    created = runner.invoke(
        app,
        [
            "keys", "create", "--name", "team-a", "--scope", "predict",
            "--model", "team-a-*", "--model", "shared", "--data-dir", data,
        ],
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert "for models shared, team-a-*" in created.stderr
    listed = runner.invoke(app, ["keys", "list", "--data-dir", data])
    assert "shared,team-a-*" in listed.stdout
    bad = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--name",
            "x",
            "--scope",
            "predict",
            "--model",
            "Team A",
            "--data-dir",
            data,
        ],
    )
    assert bad.exit_code == 2 and "model pattern 'Team A'" in bad.stderr
    for command in ("create", "list", "revoke"):
        shown = runner.invoke(app, ["keys", command, "--help"])
        assert shown.exit_code == 0 and len(shown.stdout.split("Options")[0].split()) > 6, command
