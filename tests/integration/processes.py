"""Real server processes for integration tests: start, wait until ready, stop the whole group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child in its own process group, logging to a file (printed when a test fails)."""

    def __init__(
        self, args: list[str], env: dict[str, str], log: Path, cwd: Path | None = None
    ) -> None:
        self.log = log
        self._handle = open(log, "wb")
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
                self.popen.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._handle.close()

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def lure_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "service.cli.main", *args]


def create_admin_key(env: dict[str, str], data_dir: Path | None = None) -> str:
    """``lure keys create`` as a user would run it; returns the printed key."""
    args = ["keys", "create", "--name", "tests", "--scope", "admin"]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    result = subprocess.run(
        lure_command(*args), env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def wait_ready(base_url: str, process: Process, api_key: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"server exited early:\n{process.tail()}")
        try:
            answer = httpx.get(
                f"{base_url}/readyz", timeout=5, headers={"Authorization": f"Bearer {api_key}"}
            )
            if answer.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout}s:\n{process.tail()}")
