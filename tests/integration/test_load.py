"""16 predict and 4 ingest clients on loopback while updates run: no request may fail."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from benchmarks.load_test import run_load
from tests.integration.processes import (
    Process,
    create_admin_key,
    free_port,
    lure_command,
    wait_ready,
)

pytestmark = pytest.mark.slow


def test_concurrent_predict_and_ingest_during_updates_have_zero_errors(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LURE_")} | {
        "LURE_TORCH_THREADS": "1"
    }
    key, port = create_admin_key(env, tmp_path / "data"), free_port()
    server = Process(
        lure_command("up", "--port", str(port), "--data-dir", str(tmp_path / "data")),
        env,
        tmp_path / "up.log",
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", server, key)
        result = asyncio.run(run_load(f"http://127.0.0.1:{port}", key, duration=12))
    except BaseException:
        print(server.tail(40))
        raise
    finally:
        server.stop()
    artifacts = Path(__file__).resolve().parents[1] / "artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "load.json").write_text(json.dumps(result, indent=2))
    assert result["predict"]["errors"] == 0, result["predict"]["error_examples"]
    assert result["ingest"]["errors"] == 0, result["ingest"]["error_examples"]
    assert result["predict"]["requests"] > 50 and result["ingest"]["requests"] > 10
    assert (
        result["jobs_succeeded"] + result["jobs_running_or_queued_at_end"] >= 2
    )  # updates ran meanwhile
