"""Both deployment shapes as real processes, for tests that must hold on either database.

``sqlite``: the embedded default's storage (SQLite and the filesystem queue in one data folder),
with the API and the worker as separate processes so a test can kill one without the other.
``postgres``: PostgreSQL + Redis, as in production.
``s3``: PostgreSQL + Redis + S3 (the tests' SeaweedFS), each process with its own empty data
folder: several hosts with no shared disk.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)
from tests.s3 import s3_environment

KINDS = ["sqlite", "postgres"]
WITH_OBJECT_STORE = [*KINDS, "s3"]


@dataclass
class Deployment:
    kind: str
    tmp_path: Path
    env: dict[str, str]
    key: str
    port: int
    api: Process | None = None
    workers: list[Process] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.env["LURE_DATA_DIR"])

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {self.key}"}
        )

    def start_api(self) -> Process:
        self.api = Process(
            lure_command("api", "--port", str(self.port)),
            self.env,
            self.tmp_path / f"api-{time.monotonic_ns()}.log",
        )
        wait_ready(self.url, self.api, self.key)
        return self.api

    def start_worker(self) -> Process:
        number = len(self.workers) + 1
        env = self.env
        if self.kind == "s3":  # a host of its own
            env = env | {"LURE_DATA_DIR": str(self.tmp_path / f"worker{number}-host")}
        worker = Process(lure_command("worker"), env, self.tmp_path / f"worker{number}.log")
        self.workers.append(worker)
        return worker

    def kill_worker(self, worker: Process) -> None:
        """SIGKILL the whole worker: the Celery process, its fork server and any update process."""
        worker.stop(signal.SIGKILL)

    def logs(self) -> str:
        parts = [f"--- api ---\n{self.api.tail(40)}"] if self.api else []
        parts += [f"--- worker{i + 1} ---\n{w.tail(60)}" for i, w in enumerate(self.workers)]
        return "\n".join(parts)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.api:
            self.api.stop()


def environment(tmp_path: Path, **values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")}
    return env | {"LURE_TORCH_THREADS": "1", "LURE_DATA_DIR": str(tmp_path / "data")} | values


def make_deployment(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path, **settings: str
) -> Deployment:
    """A deployment with its API started (workers are started by the test)."""
    env = environment(tmp_path, **settings)
    if kind in ("postgres", "s3"):
        env |= {
            "LURE_DATABASE_URL": request.getfixturevalue("postgres_url"),
            "LURE_BROKER_URL": request.getfixturevalue("redis_url"),
        }
    if kind == "s3":
        env |= s3_environment()
    deployment = Deployment(kind, tmp_path, env, create_admin_key(env), free_port())
    deployment.start_api()
    return deployment


def wait_job(client: httpx.Client, job_id: int, predicate, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the state wanted: {job}")


def training(job: dict, epoch: int = 2) -> bool:
    """The job's update process is in its relearn phase, at ``epoch`` or later."""
    progress = job.get("progress") or {}
    return (
        job["state"] == "running"
        and progress.get("phase") == "relearn"
        and progress["epoch"] >= epoch
    )


def shorten_later_updates(client: httpx.Client, model: str = "digits") -> None:
    """Once a deliberately slow update has been acted on (killed, stopped, cut off), later
    attempts train at most 8 epochs: the recipe's PATCH applies to the next attempt, and these
    tests are about what happens to the job, not about the epochs."""
    answer = client.patch(
        f"/v1/models/{model}", json={"train_until": {"train_accuracy": 1.0, "max_epochs": 8}}
    )
    assert answer.status_code == 200, answer.text


def runner_pid(job: dict) -> int:
    return int(job["runner"].rsplit(":", 1)[1])


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached after {timeout}s")


@dataclass
class Embedded:
    """``lure up`` as a user starts it: API and worker on one data folder, a key made beforehand."""

    server: Process
    url: str
    key: str
    env: dict[str, str]


def start_lure_up(tmp_path: Path) -> Embedded:
    env, port = environment(tmp_path), free_port()
    key = create_admin_key(env, tmp_path / "data")
    command = lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    server = Process(command, env, tmp_path / "up.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, server, key)
    except BaseException:
        server.stop()
        raise
    return Embedded(server, url, key, env | {"LURE_URL": url, "LURE_API_KEY": key})
