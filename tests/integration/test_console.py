"""``lure up --demo`` as a person sees it: short lines saying what happens, no JSON, no library
chatter, and nothing created in the folder it was started from."""

from __future__ import annotations

import re

from tests.integration.deployments import environment, wait_for
from tests.integration.processes import Process, free_port, lure_command


def test_lure_up_demo_prints_readable_lines_and_leaves_the_current_folder_alone(tmp_path):
    started_in = tmp_path / "cwd"
    started_in.mkdir()
    env = environment(tmp_path)
    env.pop("LURE_DATA_DIR")  # the folder comes from --data-dir, as a user passes it
    port = free_port()
    server = Process(
        lure_command("up", "--demo", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        env,
        tmp_path / "up.log",
        cwd=started_in,
    )
    try:
        wait_for(
            lambda: "version 2 published" in server.log.read_text(),
            timeout=240,
            what="the demo's second version",
        )
    finally:
        server.stop()
    console = server.log.read_text()
    lines = [line for line in console.splitlines() if line.strip()]
    assert not [line for line in lines if line.lstrip().startswith("{")], console
    for chatter in ("HTTP Request", "alembic", "celery@", "[tasks]", "No hostname"):
        assert chatter not in console, f"{chatter!r} on the console:\n{console}"
    assert re.search(r"API key \(admin scope, shown once\): lure_\w+", console), console
    assert re.search(r"\d\d:\d\d:\d\d api +mega-batch 1 of digits-demo sealed", console), console
    assert re.search(
        r"\d\d:\d\d:\d\d worker +digits-demo version 1 published from mega-batch 1 by lure: "
        r"live; test accuracy 0\.\d{3}",
        console,
    ), console
    assert list(started_in.iterdir()) == []  # no ./lure-data, no ./control
    assert (tmp_path / "data" / "lure.db").exists()
