"""A CLI command against a server that is not running says so in one line, not a traceback."""

from __future__ import annotations

import subprocess

from tests.integration.processes import free_port, lure_command


def test_an_unreachable_server_is_one_clear_line():
    url = f"http://127.0.0.1:{free_port()}"
    answer = subprocess.run(
        lure_command("versions", "--model", "m", "--url", url, "--api-key", "k"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 2
    assert answer.stderr.startswith("error: cannot reach the LURE server (ConnectError")
    assert "Traceback" not in answer.stderr and len(answer.stderr.splitlines()) == 1
