"""``lure up --demo`` on a fresh folder, N times in a row: versions, held ones, quarantined
mega-batches and each verdict's numbers, one JSON line per run (issue 26: five runs, none held).

    python -m benchmarks.demo_repeat 5 > docs/benchmarks/demo_five_runs.jsonl
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _get(port: int, key: str, path: str):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {key}"}
    )
    return json.load(urllib.request.urlopen(request, timeout=10))


def _summary(versions: list[dict], megabatches: list[dict]) -> dict:
    numbers = [v["gate"]["numbers"] for v in versions]
    return {
        "versions": len(versions),
        "held": [v["number"] for v in versions if v["release"] == "held"],
        "quarantined": [m["index"] for m in megabatches if m["state"] == "quarantined"],
        "flip": [round(n.get("flip_rate") or 0, 3) for n in numbers],
        "nll_increase": [round(n.get("nll_increase") or 0, 3) for n in numbers],
        "acc_p": [n.get("tests", {}).get("min_accuracy_delta", {}).get("p_value") for n in numbers],
        "data_gate": [(m["data_gate"] or {}).get("verdict") for m in megabatches],
    }


def run_once(port: int, deadline_seconds: float = 600) -> dict:
    folder = Path(tempfile.mkdtemp(prefix="lure-demo-"))
    log = folder.with_suffix(".log")
    with log.open("w") as out:
        command = ["lure", "up", "--demo", "--data-dir", str(folder), "--port", str(port)]
        server = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    key, deadline = None, time.monotonic() + deadline_seconds
    try:
        while time.monotonic() < deadline:
            time.sleep(2)
            text = log.read_text()
            if key is None and "LURE_API_KEY=" in text:
                key = text.split("LURE_API_KEY=")[1].split()[0]
            try:
                versions = _get(port, key, "/v1/models/digits-demo/versions") if key else []
            except OSError:
                continue
            if len(versions) >= 5:
                return _summary(versions, _get(port, key, "/v1/models/digits-demo/megabatches"))
        return {"error": "no 5 versions before the deadline", "log": log.read_text()[-2000:]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    for run in range(int(sys.argv[1]) if len(sys.argv) > 1 else 5):
        started = time.monotonic()
        result = run_once(8600 + run)
        print(json.dumps({**result, "seconds": round(time.monotonic() - started)}), flush=True)


if __name__ == "__main__":
    main()
