"""``lure api --workers N``: several API processes on one port, so HTTP uses more than one core.

One Python process handles one request at a time; on PostgreSQL the processes share nothing but
the database and the broker, as replicas do. On the embedded SQLite default it is refused.
"""

from __future__ import annotations

import os
import signal
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import environment, wait_for
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)
from tests.integration.scenario import wait_for_versions


def _spawned_children(parent: int) -> list[int]:
    """The API processes ``lure api --workers`` started (each on the port with SO_REUSEPORT)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == parent and b"--reuse-port" in command:
            children.append(int(stat.parent.name))
    return children


def test_several_workers_on_sqlite_are_refused_before_anything_starts(tmp_path):
    env = environment(tmp_path)
    result = subprocess.run(
        lure_command("api", "--workers", "2", "--port", str(free_port())),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "--workers 2 needs PostgreSQL" in result.stderr + result.stdout
    assert not (tmp_path / "data" / "lure.db").exists()  # refused before any migration


def test_two_api_processes_share_one_port_and_serve_the_same_live_version(
    tmp_path, postgres_url, redis_url
):
    env = environment(tmp_path, LURE_DATABASE_URL=postgres_url, LURE_BROKER_URL=redis_url)
    env.pop("LURE_TORCH_THREADS")  # unset: the processes share the cores out
    key, port = create_admin_key(env), free_port()
    api = Process(lure_command("api", "--workers", "2", "--port", str(port)), env, tmp_path / "a")
    worker = Process(lure_command("worker"), env, tmp_path / "worker.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, api, key)
        assert len(_spawned_children(api.popen.pid)) == 2, api.tail()
        data = load_digits_dataset()
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=url, timeout=60, headers=headers) as client:
            assert client.post("/v1/models", json=DIGITS_MODEL).status_code == 201
            name = DIGITS_MODEL["name"]
            answer = client.post(
                f"/v1/models/{name}/chunks?split=train",
                headers=NPZ,
                content=npz_body(data.train.x[:300], data.train.y[:300]),
            )
            assert answer.status_code == 201 and answer.json()["sealed"] == [1], answer.text
            wait_for_versions(client, name, 1)
        images = png_images(data.test.x[:1])

        def predict(_: int) -> tuple[int, str]:
            with httpx.Client(base_url=url, timeout=60, headers=headers) as fresh:  # new socket
                answer = fresh.post(f"/v1/models/{name}/predict", json={"images": images})
                return answer.status_code, answer.headers.get("x-model-version", "")

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(predict, range(40)))
        assert answers == [(200, "1")] * 40
        # an API process that dies is replaced; the port keeps answering meanwhile
        before = _spawned_children(api.popen.pid)
        os.kill(before[0], signal.SIGKILL)

        def replaced() -> list[int] | None:
            now = _spawned_children(api.popen.pid)
            return now if len(now) == 2 and before[0] not in now else None

        after = wait_for(replaced, timeout=60, what="a replacement API process")
        assert before[1] in after
        wait_ready(url, api, key)
        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(predict, range(16))) == [(200, "1")] * 16
        assert "API process 1 killed by SIGKILL" in api.log.read_text() or (
            "API process 2 killed by SIGKILL" in api.log.read_text()
        )
    finally:
        worker.stop()
        api.stop()
    assert api.popen.poll() is not None
    assert not _spawned_children(api.popen.pid)
