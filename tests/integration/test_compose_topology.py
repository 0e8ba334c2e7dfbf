"""The production shape of ``docker-compose.yml``, proven without Docker: its services' commands,
with its environment, run as plain processes on real PostgreSQL and Redis (two API replicas on two
ports, two workers), and the image built by the Dockerfile holds everything those commands need.

What the compose file cannot say is replaced, and only that: the ``postgres``/``redis``/``s3`` host
names and the S3 credentials by the test's servers (and a bucket prefix of the test's own), each
container's ``/data`` by an empty folder of that process's own (no disk is shared: every blob goes
through the object store), the published port by a free one; and two timing settings are
shortened (a lost worker's job is taken over after 4 s, not 60 s) so the scenario fits a test.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml

from lure_engine.data import load_digits_dataset
from service.settings import ServerSettings
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import environment, training, wait_for, wait_job
from tests.integration.processes import Process, free_port, lure_command
from tests.s3 import s3_environment, stored_keys

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DATA = load_digits_dataset()
# ~10 s an update (time to act mid-update); no gate, so every version goes live
MODEL = {
    **DIGITS_MODEL,
    "replay": "none",
    "epochs": 60,
    "promotion": {"min_accuracy_delta": None},
}
FAST_TAKEOVER = {"LURE_STALE_JOB_SECONDS": "4", "LURE_HEARTBEAT_SECONDS": "1"}


def _command(service: str, port: int | None = None) -> list[str]:
    """The service's command, run from this checkout: ``lure`` is ``python -m service.cli.main``."""
    command = list(SERVICES[service]["command"])
    assert command[0] == "lure", command
    args = command[1:]
    if "--host" in args:
        args[args.index("--host") + 1] = "127.0.0.1"
    if port is not None:
        args[args.index("--port") + 1] = str(port)
    return lure_command(*args)


def _env(service: str, host: Path, services: dict[str, str]) -> dict[str, str]:
    """The service's environment on a host of its own (``host``: its empty data folder)."""
    declared = {k: str(v) for k, v in SERVICES[service]["environment"].items()}
    assert (
        "postgres:5432" in declared["LURE_DATABASE_URL"]
        and "redis:6379" in declared["LURE_BROKER_URL"]
        and declared["LURE_S3_ENDPOINT_URL"] == "http://s3:8333"
        and declared["LURE_BLOB_URL"].startswith("s3://")
    )
    return environment(host) | declared | services | {"LURE_DATA_DIR": str(host)} | FAST_TAKEOVER


def _healthcheck(service: str, port: int) -> list[str]:
    """The compose healthcheck's own command, pointed at this replica's port."""
    test = SERVICES[service]["healthcheck"]["test"]
    assert test[0] == "CMD" and test[1] == "python", test
    return [sys.executable, *[part.replace(":8000/", f":{port}/") for part in test[2:]]]


class Replica:
    def __init__(self, name: str, port: int, env: dict[str, str], tmp_path: Path) -> None:
        self.name, self.port, self.env, self.tmp_path = name, port, env, tmp_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: Process | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        self.process = Process(
            _command("api", self.port),
            self.env,
            self.tmp_path / f"{self.name}-{self.starts}.log",
        )

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until the compose healthcheck passes: it carries no key."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.popen.poll() is not None:
                raise AssertionError(f"{self.name} exited:\n{self.process.tail()}")
            check = subprocess.run(_healthcheck("api", self.port), capture_output=True, timeout=30)
            if check.returncode == 0:
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} never passed its healthcheck:\n{self.process.tail()}")


def _client(replica: Replica, key: str) -> httpx.Client:
    return httpx.Client(
        base_url=replica.url, timeout=60, headers={"Authorization": f"Bearer {key}"}
    )


def _chunk(client: httpx.Client, start: int, count: int) -> dict:
    answer = client.post(
        "/v1/models/digits/chunks?split=train",
        headers=NPZ,
        content=npz_body(DATA.train.x[start : start + count], DATA.train.y[start : start + count]),
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def _trained_exactly_once(client: httpx.Client, ledger: list[dict], versions: list[dict]) -> None:
    """Each acknowledged chunk was trained on by the version of its own mega-batch, and the
    mega-batches hold exactly the acknowledged samples: none lost, none trained twice."""
    by_megabatch = {v["megabatch"]: v["number"] for v in versions}
    for chunk in ledger:
        stored = client.get(f"/v1/models/digits/chunks/{chunk['id']}").json()
        index = stored["megabatch"]["index"]
        assert stored["trained_in_version"] == by_megabatch[index], stored
    megabatches = client.get("/v1/models/digits/megabatches").json()
    trained = sum(m["n_samples"] for m in megabatches if m["index"] in by_megabatch)
    assert trained == sum(chunk["accepted"] for chunk in ledger)


def _served_version(client: httpx.Client) -> int:
    answer = client.post("/v1/models/digits/predict", json={"images": png_images(DATA.test.x[:2])})
    assert answer.status_code == 200, answer.text
    return int(answer.headers["X-Model-Version"])


def _wait_served(client: httpx.Client, number: int, timeout: float) -> float:
    started = time.monotonic()
    wait_for(lambda: _served_version(client) == number, timeout, f"version {number} served")
    return time.monotonic() - started


def _job_of(client: httpx.Client, megabatch: int) -> dict:
    jobs = [j for j in client.get("/v1/models/digits/jobs").json() if j["megabatch"] == megabatch]
    assert len(jobs) == 1, jobs  # one job per sealed mega-batch, however many dispatchers
    return jobs[0]


def _holder(workers: list[Process], job: dict) -> Process:
    pid = int(job["runner"].rsplit(":", 1)[1])
    group = os.getpgid(pid)
    [holder] = [w for w in workers if w.popen.pid == group]
    return holder


def test_the_image_holds_every_command_the_compose_file_runs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    scripts = project["project"]["scripts"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = set(re.findall(r"^COPY (\S+) \S+$", dockerfile, re.MULTILINE))
    found = project["tool"]["setuptools"]["packages"]["find"]
    packages = [p.rstrip("*") for p in found["include"]]
    folders = [w for w in found.get("where", ["."]) if w != "."]  # e.g. client/lure_client

    def is_copied(package: str) -> bool:
        return package in copied or any(
            folder in copied and (ROOT / folder / package).is_dir() for folder in folders
        )

    missing = [p for p in [*packages, "migrations"] if not is_copied(p)]
    assert not missing, f"the Dockerfile does not copy {missing}"
    assert re.search(r"RUN pip install (-e )?\.", dockerfile)
    for name, service in SERVICES.items():
        if "build" not in service:
            continue  # postgres and redis: their own images
        program, subcommand = service["command"][:2]
        assert program in scripts, f"{name}: {program!r} is not a console script"
        answer = subprocess.run(
            lure_command(subcommand, "--help"), capture_output=True, text=True, timeout=60
        )
        assert answer.returncode == 0, f"{name}: `lure {subcommand}` does not exist"
        known = {f"LURE_{f.upper()}" for f in ServerSettings.model_fields}
        aws = {name for name in service["environment"] if name.startswith("AWS_")}
        unknown = set(service["environment"]) - known - aws - {"LURE_LOG_FORMAT", "LURE_LOG_LEVEL"}
        assert not unknown, f"{name} sets settings that do not exist: {unknown}"


@pytest.mark.slow
def test_two_api_replicas_and_two_workers_as_compose_runs_them(tmp_path, postgres_url, redis_url):
    services = {"LURE_DATABASE_URL": postgres_url, "LURE_BROKER_URL": redis_url, **s3_environment()}
    api_env = _env("api", tmp_path / "host-api", services)
    # the documented first-key path: `docker compose run --rm api lure keys create ...`
    created = subprocess.run(
        lure_command("keys", "create", "--name", "admin", "--scope", "admin"),
        env=api_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    a, b = (
        Replica(n, free_port(), _env("api", tmp_path / f"host-{n}", services), tmp_path)
        for n in ("api-a", "api-b")
    )
    workers: list[Process] = []
    try:
        a.start()
        b.start()  # together: they migrate the same empty database at once
        a.wait_healthy()
        b.wait_healthy()
        workers = [
            Process(
                _command("worker"),
                _env("worker", tmp_path / f"host-worker{i}", services),
                tmp_path / f"worker{i}.log",
            )
            for i in (1, 2)
        ]
        ledger: list[dict] = []  # every chunk the server acknowledged

        def acknowledge(client: httpx.Client, start: int, count: int) -> dict:
            ledger.append(_chunk(client, start, count))
            return ledger[-1]

        with _client(a, key) as on_a, _client(b, key) as on_b:
            anonymous = httpx.get(f"{a.url}/readyz").json()
            assert set(anonymous) == {"ready", "status"}  # probes see no details
            assert on_a.post("/v1/models", json=MODEL).status_code == 201
            on_a.post(
                "/v1/models/digits/chunks?split=test",
                content=npz_body(DATA.test.x, DATA.test.y),
                headers=NPZ,
            ).raise_for_status()

            # ingest on A; B serves the new version within seconds of its publication
            [first] = acknowledge(on_a, 0, 300)["jobs"]
            wait_job(on_a, first, lambda j: j["state"] == "succeeded", timeout=240)
            assert _wait_served(on_b, 1, timeout=10) < 5
            [second] = acknowledge(on_b, 300, 300)["jobs"]
            wait_job(on_b, second, lambda j: j["state"] == "succeeded", timeout=240)
            assert _wait_served(on_a, 2, timeout=10) < 5

            # promote on B: A follows
            assert on_b.post("/v1/models/digits/versions/1/promote").status_code == 200
            assert _wait_served(on_a, 1, timeout=10) < 5

            # SIGKILL the worker training mega-batch 3: the other one finishes the work
            [third] = acknowledge(on_a, 600, 300)["jobs"]
            job = wait_job(on_a, third, lambda j: training(j, 3), timeout=240)
            killed = _holder(workers, job)
            killed.stop(signal.SIGKILL)

            # restart replica A mid-stream (SIGKILL): every acknowledged chunk is kept
            acknowledged = [acknowledge(on_a, 900, 60)["id"], acknowledge(on_b, 960, 60)["id"]]
            a.process.stop(signal.SIGKILL)
            acknowledged += [acknowledge(on_b, 1020, 60)["id"], acknowledge(on_b, 1080, 60)["id"]]
            a.start()
            a.wait_healthy()
            fourth = acknowledge(on_a, 1140, 60)
            acknowledged.append(fourth["id"])
            for chunk_id in acknowledged:
                stored = on_b.get(f"/v1/models/digits/chunks/{chunk_id}")
                assert stored.status_code == 200 and stored.json()["megabatch"]["index"] == 4

            wait_job(on_b, third, lambda j: j["state"] == "succeeded", timeout=300)
            [last] = fourth["jobs"]
            wait_job(on_b, last, lambda j: j["state"] == "succeeded", timeout=300)
            jobs = on_a.get("/v1/models/digits/jobs").json()
            assert sorted(j["megabatch"] for j in jobs) == [1, 2, 3, 4]
            # no job trained twice although both replicas dispatch: one attempt each, except the
            # one whose worker was killed (that attempt is recorded as lost)
            attempts = {
                j["megabatch"]: (j["attempts"], [f["kind"] for f in j["failures"]]) for j in jobs
            }
            assert attempts == {1: (1, []), 2: (1, []), 3: (2, ["lost"]), 4: (1, [])}, attempts
            versions = on_b.get("/v1/models/digits/versions").json()
            assert sorted(v["megabatch"] for v in versions) == [1, 2, 3, 4]
            third_version = next(v for v in versions if v["megabatch"] == 3)
            assert third_version["parent"] == 1  # trained from the promoted version
            _trained_exactly_once(on_a, ledger, versions)
            assert (
                _served_version(on_a)
                == _served_version(on_b)
                == on_a.get("/v1/models/digits").json()["live_version"]
            )
        hosts = [tmp_path / f"host-{name}" for name in ("api-a", "api-b", "worker1", "worker2")]
        assert all(host.is_dir() for host in hosts)  # each process its own data folder
        assert not [f for host in hosts for f in (host / "blobs").rglob("*") if f.is_file()]
        stored = stored_keys(services)  # everything lives in the bucket
        assert sum("/versions/" in k and "weights" in k for k in stored) >= 4
    except BaseException:
        for process in [a.process, b.process, *workers]:
            if process is not None:
                print(f"--- {process.log.name} ---\n{process.tail(60)}")
        raise
    finally:
        for process in [*workers, a.process, b.process]:
            if process is not None:
                process.stop()
