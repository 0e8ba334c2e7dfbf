"""Children die with their supervisor (issue 23 B): SIGKILL only ``lure up``'s main process, or
only the ``lure api --workers 2`` supervisor, and every process it started exits; a restart finds
the folder and the port free and runs exactly one set of processes. Before, the worker kept
taking jobs and the API processes kept serving, and each restart added more."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.deployments import environment, wait_for
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)

pytestmark = pytest.mark.slow


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid → (parent pid, command line) of every process."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            found[int(stat.parent.name)] = (parent, (stat.parent / "cmdline").read_bytes())
        except (OSError, ValueError, IndexError):  # it ended while we looked
            continue
    return found


def _descendants(root: int) -> set[int]:
    table, tree, grew = _processes(), {root}, True
    while grew:
        more = {pid for pid, (parent, _) in table.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree - {root}


def _alive(pids: set[int]) -> set[int]:
    table = _processes()
    return {pid for pid in pids if pid in table}


def _kill_supervisor_only(process: Process, what: str) -> set[int]:
    children = _descendants(process.popen.pid)
    assert children, f"{what} started no processes"
    os.kill(process.popen.pid, signal.SIGKILL)  # the main process alone, not its group
    process.popen.wait(10)
    wait_for(lambda: not _alive(children), 60, f"the processes {what} started to exit")
    return children


def test_killing_lure_up_takes_its_worker_and_fork_server_with_it(tmp_path):
    env, port = environment(tmp_path), free_port()
    key = create_admin_key(env, tmp_path / "data")
    command = lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data"))
    first = Process(command, env, tmp_path / "up1.log")
    second = None
    try:
        wait_ready(f"http://127.0.0.1:{port}", first, key)
        wait_for(lambda: len(_descendants(first.popen.pid)) >= 2, 60, "the worker's fork server")
        _kill_supervisor_only(first, "lure up")
        second = Process(command, env, tmp_path / "up2.log")
        wait_ready(f"http://127.0.0.1:{port}", second, key)
        table = _processes()
        workers = [
            pid for pid in _descendants(second.popen.pid) if b"-m\x00worker" in table[pid][1]
        ]
        assert len(workers) == 1
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_killing_the_api_supervisor_takes_its_api_processes_with_it(
    tmp_path, postgres_url, redis_url
):
    env = environment(tmp_path, LURE_DATABASE_URL=postgres_url, LURE_BROKER_URL=redis_url)
    key, port = create_admin_key(env), free_port()
    command = lure_command("api", "--workers", "2", "--port", str(port))
    first = Process(command, env, tmp_path / "api1.log")
    second = None
    try:
        wait_ready(f"http://127.0.0.1:{port}", first, key)
        assert len(_kill_supervisor_only(first, "lure api --workers 2")) == 2
        second = Process(command, env, tmp_path / "api2.log")
        wait_ready(f"http://127.0.0.1:{port}", second, key)
        assert len(_descendants(second.popen.pid)) == 2
        listening = [pid for pid, (_, line) in _processes().items() if b"--reuse-port" in line]
        assert sorted(listening) == sorted(_descendants(second.popen.pid))
    finally:
        first.stop()
        if second is not None:
            second.stop()
