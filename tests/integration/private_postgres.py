"""A PostgreSQL server of the test's own, so a test can stop and restart it without touching the
cluster every other test shares (``scripts/services.sh`` installs the binaries)."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.integration.processes import free_port


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    if not found:
        message = "PostgreSQL's binaries are missing: run `source scripts/services.sh`"
        if os.environ.get("LURE_REQUIRE_SERVICES"):
            pytest.fail(message)
        pytest.skip(message)
    return Path(found[-1])


class PrivatePostgres:
    """initdb into a new folder under /tmp (pytest's own folders are closed to the postgres
    user), then start/stop at will on a port of its own (trust auth)."""

    def __init__(self) -> None:
        self.bin, self.port = _binaries(), free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="lure-test-postgres-"))
        self.data = self.folder / "pgdata"
        self.data.mkdir()
        if os.geteuid() == 0:  # postgres refuses to run as root
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.data, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data}"
        log = str(self.data / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", log, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every connection at once, as a restart does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)
