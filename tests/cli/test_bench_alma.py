import json
import subprocess
import sys

from typer.testing import CliRunner

from lure_engine.bench_cli import BenchOptions, build_config
from service.cli.main import app

REQUIRED = {
    "index",
    "test_accuracy",
    "test_errors",
    "cer",
    "train_accuracy",
    "val_accuracy",
    "generalization_gap",
    "ece",
    "train_seconds",
    "unlearn_seconds",
}


def test_short_digits_run_writes_results_table_and_plot(tmp_path):
    out = tmp_path / "bench"
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "alma",
            "--dataset",
            "digits",
            "--model",
            "mlp",
            "--strategies",
            "warm,lure",
            "--megabatches",
            "3",
            "--epochs",
            "2",
            "--seeds",
            "0,1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["strategies"] == ["warm", "lure"]
    assert len(results["runs"]) == 4
    for run in results["runs"]:
        assert len(run["megabatches"]) == 3
        for record in run["megabatches"]:
            assert REQUIRED <= set(record)
            assert 0.0 <= record["test_accuracy"] <= 1.0
    table = (out / "results.md").read_text()
    assert "| warm |" in table and "| lure |" in table and "±" in table
    assert (out / "alma.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _run_cli(*args):
    """In-process (starting Python and torch per case would cost seconds each)."""
    return CliRunner().invoke(app, ["bench", "alma", *args])


def test_the_console_script_reports_errors_on_stderr_with_a_nonzero_exit():
    result = subprocess.run(
        [sys.executable, "-m", "service.cli.main", "bench", "alma", "--keep", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "error: --keep must lie strictly between 0 and 1, got 0.0"


def test_bad_arguments_fail_with_one_clear_line_before_training(tmp_path):
    cases = {
        ("--strategies", "warm,forget"): "unknown strategy 'forget'",
        ("--model", "resnet9"): "unknown model 'resnet9'",
        ("--keep", "1.0"): "--keep must lie strictly between 0 and 1",
        ("--dataset", f"npz:{tmp_path}/missing.npz"): "dataset file not found",
        ("--replay", "buffer:abc"): "replay buffer size must be an integer",
    }
    for args, message in cases.items():
        result = _run_cli(*args, "--out", str(tmp_path / "never"))
        assert result.exit_code != 0
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert lines == [lines[0]] and message in lines[0], result.stderr
    assert not (tmp_path / "never").exists()


def test_npz_with_wrong_shapes_is_refused(tmp_path):
    import numpy as np

    path = tmp_path / "bad.npz"
    np.savez(
        path,
        x_train=np.zeros((10, 8, 8, 1, 1), np.uint8),
        y_train=np.zeros(10),
        x_test=np.zeros((5, 8, 8, 1), np.uint8),
        y_test=np.zeros(5),
    )
    result = _run_cli("--dataset", f"npz:{path}")
    assert result.exit_code != 0 and "x_train must be uint8 (N,H,W,C)" in result.stderr


def test_the_bench_defaults_are_the_engines_own():
    """Given nothing, ``lure bench alma`` trains what the engine would (lure_engine/configs.py);
    only the benchmark's own choices (epochs per mega-batch, augmentation per dataset) differ."""
    from dataclasses import replace

    from lure_engine.configs import UpdateConfig

    built = build_config(BenchOptions()).config.update
    engine = UpdateConfig()
    own = {"epochs": built.train.epochs, "hflip": built.train.hflip}
    own |= {"crop_padding": built.train.crop_padding}
    assert replace(built, strategy=engine.strategy) == replace(
        engine, train=replace(engine.train, **own)
    )
