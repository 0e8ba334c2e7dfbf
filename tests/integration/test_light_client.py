"""The light client (issue 24): ``client/`` builds as its own wheel, holding only ``lure_client``
and needing no torch, and its ``lure`` drives a real server with the server's packages blocked."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import DIGITS_MODEL
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
# a meta-path finder first in line refuses these: the light client must run without any of them
BLOCKER = """
import sys
class Blocked:
    NAMES = {"torch", "torchvision", "lure_engine", "lure_core", "service", "worker"}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.NAMES:
            raise ImportError(f"{name} is not installed with the light client")
        return None
sys.meta_path.insert(0, Blocked())
import lure_client
assert lure_client.__file__.startswith(sys.argv[1]), lure_client.__file__
from lure_client.cli import main
sys.argv = ["lure", *sys.argv[2:]]
main()
"""


@pytest.fixture(scope="module")
def light_wheel(tmp_path_factory) -> Path:
    """``pip wheel ./client``, unpacked: what ``pip install ./client`` puts on a machine."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
        + ["-w", str(out), str(ROOT / "client")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("lure_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(out / "site")
    return out / "site"


def test_the_wheel_holds_only_the_client_and_requires_no_torch(light_wheel):
    packages = {p.name for p in light_wheel.iterdir() if not p.name.endswith(".dist-info")}
    assert packages == {"lure_client"}
    (info,) = light_wheel.glob("lure_client-*.dist-info")
    requires = [
        line for line in (info / "METADATA").read_text().splitlines() if line.startswith("Requires")
    ]
    plain = [line for line in requires if "extra ==" not in line and "Requires-Python" not in line]
    assert plain and not any("torch" in line for line in plain), plain
    assert "lure = lure_client.cli:main" in (info / "entry_points.txt").read_text()


def test_the_light_client_drives_a_real_server_without_torch(light_wheel, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")}
    key = create_admin_key(env, tmp_path / "data")
    server = Process(
        lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        env | {"LURE_TORCH_THREADS": "1"},
        tmp_path / "server.log",
    )
    client_env = env | {
        "LURE_URL": f"http://127.0.0.1:{port}",
        "LURE_API_KEY": key,
        "PYTHONPATH": str(light_wheel),
    }

    def light(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", BLOCKER, str(light_wheel), *args],
            env=client_env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "chunk.npz",
        x=rng.integers(0, 256, (40, 8, 8, 1), np.uint8),
        y=rng.integers(0, 10, 40),
    )
    try:
        wait_ready(client_env["LURE_URL"], server, key)
        spec = {k: str(v) for k, v in DIGITS_MODEL.items() if k in ("architecture", "width")}
        created = light(
            "create", "light", "--architecture", spec["architecture"], "--width", spec["width"],
            "--num-classes", "10", "--image-size", "8", "--channels", "1",
            "--megabatch-size", "100",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        assert "created model light" in created.stdout
        pushed = light("push", str(tmp_path / "chunk.npz"), "--model", "light")
        assert pushed.returncode == 0, pushed.stderr
        assert "40" in pushed.stdout
        versions = light("versions", "--model", "light")
        assert versions.returncode == 0, versions.stderr
        digits = light("push", "digits", "--model", "light")  # the demo data is the server's
        assert digits.returncode == 2 and "server's package" in digits.stderr
        missing = light("versions", "--model", "nope")
        assert missing.returncode != 0 and "nope" in missing.stderr
    finally:
        server.stop()
