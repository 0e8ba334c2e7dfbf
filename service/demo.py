"""The demo stream of ``lure up --demo``: scikit-learn's digits, posted over real HTTP in chunks.

It creates a model, posts a held-out test chunk, then streams training chunks so that mega-batches
seal and versions appear one after another, printing what happens.
"""

from __future__ import annotations

import io
import time

import httpx
import numpy as np

from lure_engine.data import load_digits_dataset

DEMO_MODEL = {
    "name": "digits-demo", "architecture": "small_cnn", "width": 0.5, "num_classes": 10, "image_size": 8,
    "channels": 1, "strategy": "lure", "replay": "full", "megabatch_size": 300, "epochs": 15,
    "batch_size": 32, "lr": 0.05, "hflip": False,
}


def npz_bytes(x: np.ndarray, y: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=x, y=y)
    return buffer.getvalue()


def wait_healthy(client: httpx.Client, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the API did not become healthy")


def run_demo(base_url: str, api_key: str | None = None, chunk_size: int = 50, pause: float = 0.2,
             echo=print) -> None:
    data = load_digits_dataset()
    name = DEMO_MODEL["name"]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=base_url, timeout=60, headers=headers) as client:
        wait_healthy(client)
        created = client.post("/v1/models", json=DEMO_MODEL)
        if created.status_code == 409:
            echo(f"demo: model {name} exists; streaming more data into it")
        else:
            created.raise_for_status()
            answer = client.post(f"/v1/models/{name}/chunks?split=test", content=npz_bytes(data.test.x, data.test.y),
                                 headers={"content-type": "application/octet-stream"})
            answer.raise_for_status()
            echo(f"demo: created model {name}; posted {answer.json()['accepted']} held-out test images")
        for start in range(0, len(data.train), chunk_size):
            x, y = data.train.x[start:start + chunk_size], data.train.y[start:start + chunk_size]
            answer = client.post(f"/v1/models/{name}/chunks?split=train", content=npz_bytes(x, y),
                                 headers={"content-type": "application/octet-stream"})
            answer.raise_for_status()
            for index, job in zip(answer.json()["sealed"], answer.json()["jobs"]):
                echo(f"demo: mega-batch {index} sealed; update job {job} queued")
            time.sleep(pause)
        sealed = client.post(f"/v1/models/{name}/megabatches/seal")
        if sealed.status_code == 200:
            echo(f"demo: sealed the last, partial mega-batch {sealed.json()['index']}")
        seen: set[int] = set()
        deadline = time.monotonic() + 600
        expected = len(client.get(f"/v1/models/{name}/megabatches").json())
        while len(seen) < expected and time.monotonic() < deadline:
            for version in client.get(f"/v1/models/{name}/versions").json():
                if version["number"] not in seen:
                    seen.add(version["number"])
                    m = version["metrics"]
                    echo(f"demo: version {version['number']} published (mega-batch {version['megabatch']}): "
                         f"test accuracy {m['test_accuracy']:.3f}, CER {m['cer']}, ECE {m['ece']:.3f}")
            time.sleep(1)
        echo(f"demo: done. Try: curl -H \"Authorization: Bearer $LURE_API_KEY\" {base_url}/v1/models/{name}/versions"
             f"  |  dashboard {base_url}/dashboard  |  docs {base_url}/docs")
