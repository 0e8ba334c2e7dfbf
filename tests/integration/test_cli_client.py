"""The client CLI driving a real embedded server, each command a real process."""

from __future__ import annotations

import os
import subprocess

import pytest
from PIL import Image

from lure_engine.data import load_digits_dataset
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)

pytestmark = pytest.mark.slow


def test_create_push_watch_versions_predict_promote_and_resume(tmp_path):
    port = free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")} | {
        "LURE_TORCH_THREADS": "1"
    }
    key = create_admin_key(base_env, tmp_path / "data")
    server = Process(
        lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        base_env,
        tmp_path / "server.log",
    )
    env = base_env | {"LURE_URL": f"http://127.0.0.1:{port}", "LURE_API_KEY": key}

    def lure(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            lure_command(*args), env=env, capture_output=True, text=True, timeout=240
        )
        if check:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    try:
        wait_ready(env["LURE_URL"], server, key)
        created = lure(
            "create",
            "digits",
            "--architecture",
            "small_cnn",
            "--width",
            "0.5",
            "--num-classes",
            "10",
            "--image-size",
            "8",
            "--channels",
            "1",
            "--megabatch-size",
            "300",
            "--epochs",
            "6",
            "--no-hflip",
            "--set",
            "lr=0.05",
            "--set",
            "batch_size=32",
        )
        assert "created model digits" in created.stdout
        assert (
            "359 test samples"
            in lure("push", "digits", "--model", "digits", "--split", "test").stdout
        )
        watcher = subprocess.Popen(
            lure_command(
                "watch",
                "--model",
                "digits",
                "--until-version",
                "4",
                "--interval",
                "0.3",
                "--timeout",
                "200",
            ),
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        first_line = watcher.stdout.readline()  # the watcher is following before any data arrives
        assert first_line.startswith("watching digits: 0 version(s) so far"), first_line
        pushed = lure("push", "digits", "--model", "digits", "--chunk-size", "100").stdout
        assert "sealed mega-batches [1, 2, 3, 4]" in pushed and "holds 238/300" in pushed
        watched, _ = watcher.communicate(timeout=240)
        assert watcher.returncode == 0, watched
        for number in (1, 2, 3, 4):
            assert f"version {number} published from mega-batch {number}" in watched

        table = lure("versions", "--model", "digits").stdout
        assert "versions of digits" in table and "●" in table and table.count("lure") == 4

        data = load_digits_dataset()
        paths = []
        for i in range(3):
            paths.append(str(tmp_path / f"digit{i}.png"))
            Image.fromarray(data.test.x[i][..., 0]).save(paths[-1])
        predicted = lure("predict", *paths, "--model", "digits").stdout
        assert (
            "digits v4" in predicted and predicted.count(" 6 ") >= 2
        )  # the first three test digits are 6s

        assert "version 2 is live" in lure("promote", "2", "--model", "digits").stdout
        assert "digits v2" in lure("predict", paths[0], "--model", "digits").stdout

        resumed = lure("push", "digits", "--model", "digits", "--chunk-size", "100").stdout
        assert "15 chunks were already stored; none stored twice" in resumed
        assert "digits v2" in lure("predict", paths[0], "--model", "digits").stdout

        configured = lure(
            "configure", "--model", "digits", "--strategy", "auto", "--switch-significance", "0.1"
        ).stdout
        assert "strategy auto" in configured and "switch significance 0.1" in configured
        bad_level = lure(
            "configure", "--model", "digits", "--switch-significance", "2", check=False
        )
        assert bad_level.returncode == 2 and "switch_significance" in bad_level.stderr

        missing = lure("predict", paths[0], "--model", "ghost", check=False)
        assert (
            missing.returncode == 2 and missing.stderr.strip() == "error: model 'ghost' not found"
        )
        env["LURE_API_KEY"] = "lure_bad_key"
        refused = lure("versions", "--model", "digits", check=False)
        assert (
            refused.returncode == 2
            and refused.stderr.strip() == "error: invalid or revoked API key"
        )
    except BaseException:
        print(server.tail(60))
        raise
    finally:
        server.stop()
