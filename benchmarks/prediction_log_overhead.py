"""What the prediction log costs ``/predict`` (issue 28): 32 clients, logging off against on.

    python -m benchmarks.prediction_log_overhead [--rounds 5] [--seconds 6]

Starts ``lure up`` on loopback, publishes one version of the digits model, then in each round
measures one-image ``/predict`` requests/s at 32 concurrent clients with ``log_predictions`` off
and with every image logged (``sample_rate`` 1), in alternating order (paired rounds, so the
machine's noise hits both alike). Writes ``docs/benchmarks/prediction_log_overhead.{md,json}``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.load_test import start_embedded_server
from benchmarks.markdown import publish, table
from benchmarks.raw_load import json_post, run_load
from lure_client.client import encode_image, encode_npz
from lure_engine.data import load_digits_dataset

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
MODEL = {"name": "digits", "architecture": "small_cnn", "num_classes": 10, "image_size": 8,
         "channels": 1, "width": 0.5, "megabatch_size": 300, "epochs": 5}  # fmt: skip
CLIENTS = 32


def _publish_one_version(client: httpx.Client) -> None:
    data = load_digits_dataset()
    client.post("/v1/models", json=MODEL).raise_for_status()
    headers = {"content-type": "application/octet-stream"}
    for split, x, y in (("test", data.test.x, data.test.y), ("train", data.train.x[:300],
                                                             data.train.y[:300])):  # fmt: skip
        client.post(f"/v1/models/digits/chunks?split={split}", content=encode_npz(x, y),
                    headers=headers).raise_for_status()  # fmt: skip
    deadline = time.monotonic() + 300
    while client.get("/v1/models/digits").json()["live_version"] is None:
        if time.monotonic() > deadline:
            raise RuntimeError("no version published")
        time.sleep(0.5)


def _set_logging(client: httpx.Client, on: bool) -> None:
    policy = {"sample_rate": 1.0, "keep_days": 1, "max_rows": 1_000_000} if on else None
    client.patch("/v1/models/digits", json={"log_predictions": policy}).raise_for_status()
    time.sleep(1.5)  # /predict trusts its cached recipe for LURE_LIVE_CACHE_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--port", type=int, default=8767)
    args = parser.parse_args()
    images = load_digits_dataset().test.x[:256]
    results: dict[str, list[dict]] = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as folder:
        server, key = start_embedded_server(Path(folder) / "data", args.port)
        headers = {"Authorization": f"Bearer {key}"}
        requests = [
            json_post(
                "127.0.0.1",
                args.port,
                "/v1/models/digits/predict",
                {"images": [encode_image(image)]},
                headers,
            )  # fmt: skip
            for image in images
        ]
        try:
            url = f"http://127.0.0.1:{args.port}"
            with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
                _publish_one_version(client)
                for number in range(args.rounds):
                    for setting in ("off", "on") if number % 2 == 0 else ("on", "off"):
                        _set_logging(client, setting == "on")
                        load = asyncio.run(
                            run_load("127.0.0.1", args.port, requests, CLIENTS, args.seconds)
                        )
                        results[setting].append(load.summary())
                        print(setting, results[setting][-1], flush=True)
                logged = client.get("/metrics").text
        finally:
            server.terminate()
            server.wait(30)
    publish(DOCS, "prediction_log_overhead", results, _report(results, logged))


def _report(results: dict[str, list[dict]], metrics: str) -> str:
    def stats(setting: str, key: str) -> str:
        values = [r[key] for r in results[setting]]
        return f"{min(values):.0f} / {statistics.median(values):.0f} / {max(values):.0f}"

    off = statistics.median(r["requests_per_s"] for r in results["off"])
    on = statistics.median(r["requests_per_s"] for r in results["on"])
    errors = sum(r["errors"] for rs in results.values() for r in rs)
    lines = metrics.splitlines()
    dropped = [line for line in lines if line.startswith("lure_prediction_log_dropped_total")]
    logged = [line for line in lines if line.startswith("lure_predictions_logged_total")]
    rows = [["requests/s (min / median / max)", stats("off", "requests_per_s"),
             stats("on", "requests_per_s")],
            ["p50 ms", stats("off", "p50_ms"), stats("on", "p50_ms")],
            ["p99 ms", stats("off", "p99_ms"), stats("on", "p99_ms")]]  # fmt: skip
    return (
        f"# What the prediction log costs /predict\n\n{len(results['on'])} paired rounds at "
        f"{CLIENTS} clients, one image a request, `lure up` on loopback (2 cores shared with the "
        "load generator); logging on keeps every image (`sample_rate` 1).\n\n"
        + table(["", "logging off", "logging on"], rows)
        + f"\n\nThroughput with logging on: {100 * on / off:.1f} % of off "
        f"({100 * (1 - on / off):+.1f} % cost). Errors: {errors}. Stored: "
        f"{', '.join(logged) or 'none'}; dropped: {', '.join(dropped) or 'none'}.\n"
    )


if __name__ == "__main__":
    main()
