"""The README's bring-your-own-model example, command for command, against a real `lure up`: train
a torchvision model offline, import it, stream data, watch versions appear, export ONNX and run it
with ONNX Runtime (issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.deployments import start_lure_up
from tests.integration.processes import lure_command
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_bring_your_own_model_example(tmp_path):
    embedded = start_lure_up(tmp_path)
    server, env, key = embedded.server, embedded.env, embedded.key

    def run(*args: str) -> str:
        result = subprocess.run(
            args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stderr[-3000:] + result.stdout[-2000:]
        return result.stdout

    def lure(*args: str) -> str:
        return run(*lure_command(*args))

    try:
        assert "saved team.pth" in run(
            sys.executable, str(EXAMPLES / "train_offline.py"), "--out", "team.pth"
        )
        lure(
            "create",
            "digits-shufflenet",
            "--architecture",
            "torchvision:shufflenet_v2_x0_5",
            "--num-classes",
            "10",
            "--image-size",
            "32",
            "--megabatch-size",
            "500",
            "--epochs",
            "2",
            "--no-hflip",
            "--set",
            "batch_size=32",
            "--set",
            "lr=0.01",
        )
        lure("push", "digits", "--model", "digits-shufflenet", "--split", "test")
        imported = lure("import", "team.pth", "--model", "digits-shufflenet")
        assert "imported team.pth as version 0 (live)" in imported and "test accuracy" in imported
        pushed = lure("push", "digits", "--model", "digits-shufflenet")
        assert "sealed mega-batches [1, 2]" in pushed
        with httpx.Client(
            base_url=env["LURE_URL"], headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:  # waits while training moves, however slowly (no fixed deadline)
            wait_for_versions(client, "digits-shufflenet", 3, timeout=300)
        watched = lure(
            "watch", "--model", "digits-shufflenet", "--until-version", "2", "--timeout", "120"
        )
        assert "watching digits-shufflenet: 3 version(s) so far" in watched  # returns at once
        table = lure("versions", "--model", "digits-shufflenet")
        assert "import" in table  # version 0's origin
        exported = lure(
            "export", "--model", "digits-shufflenet", "--format", "onnx", "--out", "exported"
        )
        assert "digits-shufflenet-v2.onnx" in exported and "verified on" in exported
        ran = run(
            sys.executable, str(EXAMPLES / "run_onnx.py"), "exported/digits-shufflenet-v2.onnx"
        )
        assert "accuracy on all 1797 digits with ONNX Runtime" in ran
        first = httpx.get(
            f"{env['LURE_URL']}/v1/jobs/1", headers={"Authorization": f"Bearer {key}"}
        )
        seconds = first.json()["timings"]["total_seconds"]
        print(imported, pushed, watched, exported, ran, sep="\n")  # the README's transcript
        print(f"first update from the imported model: {seconds:.1f} s")
    except BaseException:
        print(server.tail(60))
        raise
    finally:
        server.stop()
