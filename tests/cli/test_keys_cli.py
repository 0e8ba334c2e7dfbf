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


def test_a_pattern_matching_every_model_is_refused_unless_asked_for_outright(tmp_path):
    """An empty shell variable in ``--model "$TEAM*"`` became '*', a key for every model
    (issue 42 §5): only --all-models (or no --model) makes one."""
    runner, data = CliRunner(), str(tmp_path / "data")
    base = ["keys", "create", "--name", "team", "--scope", "admin", "--data-dir", data]
    star = runner.invoke(app, [*base, "--model", "*"])
    assert star.exit_code == 2 and "matches every model" in star.stderr
    assert "lure_" not in star.stdout  # no key was made
    both = runner.invoke(app, [*base, "--all-models", "--model", "team-a-*"])
    assert both.exit_code == 2 and "contradict" in both.stderr
    outright = runner.invoke(app, [*base, "--all-models"])
    assert outright.exit_code == 0 and "for every model" in outright.stderr
    listed = runner.invoke(app, ["keys", "list", "--data-dir", data])
    assert listed.stdout.count("team") == 1  # the refused ones stored nothing
