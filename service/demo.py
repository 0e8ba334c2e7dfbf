"""The demo stream of ``lure up --demo``: scikit-learn's digits, posted through the project's own
Python client (``service/client.py``) in chunks, so mega-batches seal and versions appear one after
another. The server's own log lines say what happens to them (each sealed mega-batch, each
published version with its accuracy); the demo only says what it sends.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from lure_client.client import LureClient, LureError
from lure_engine.data import load_digits_dataset

DEMO_MODEL = {
    "name": "digits-demo",
    "architecture": "small_cnn",
    "width": 0.5,
    "num_classes": 10,
    "image_size": 8,
    "channels": 1,
    "strategy": "lure",
    "replay": "full",
    "megabatch_size": 300,
    "epochs": 15,
    "batch_size": 32,
    "lr": 0.05,
    "hflip": False,
}


def _create(client: LureClient, echo: Callable[[str], None]) -> None:
    config = {k: v for k, v in DEMO_MODEL.items() if k != "name"}
    data = load_digits_dataset()
    try:
        client.create_model(DEMO_MODEL["name"], **config)
    except LureError as error:
        if error.status != 409:
            raise
        echo(
            f"demo: model {DEMO_MODEL['name']} exists; chunks it already holds are not stored twice"
        )
    answers = client.push_arrays(
        DEMO_MODEL["name"], data.test.x, data.test.y, split="test", chunk_size=1000
    )
    echo(
        f"demo: streaming scikit-learn's digits into model {DEMO_MODEL['name']} "
        f"({sum(a['accepted'] for a in answers)} held-out test images posted first)"
    )


def _stream(client: LureClient, chunk_size: int, pause: float, echo: Callable[[str], None]) -> None:
    data, name = load_digits_dataset(), DEMO_MODEL["name"]
    for start in range(0, len(data.train), chunk_size):
        x, y = data.train.x[start : start + chunk_size], data.train.y[start : start + chunk_size]
        client.push_arrays(name, x, y, chunk_size=chunk_size)
        time.sleep(pause)
    try:
        echo(f"demo: sealed the last, partial mega-batch {client.seal(name)['index']}")
    except LureError as error:
        if error.status != 409:  # 409: nothing left to seal
            raise


def _follow(client: LureClient, base_url: str, echo: Callable[[str], None]) -> None:
    """Wait until every sealed mega-batch has a version, then say what to try next."""
    name = DEMO_MODEL["name"]
    deadline, expected = time.monotonic() + 600, len(client.megabatches(name))
    while time.monotonic() < deadline:
        trained = {v["megabatch"] for v in client.versions(name) if v["megabatch"] is not None}
        if len(trained) >= expected:
            break
        time.sleep(1)
    echo(
        f"demo: done. Try: lure versions --model {name}  |  dashboard {base_url}/dashboard  "
        f"|  docs {base_url}/docs"
    )


def run_demo(
    base_url: str,
    api_key: str | None = None,
    chunk_size: int = 50,
    pause: float = 0.2,
    echo: Callable[[str], None] = print,
) -> None:
    """Create the demo model, stream digits into it and follow its versions; stops quietly when
    the server goes away (Ctrl-C on ``lure up``) instead of printing a traceback."""
    try:
        with LureClient(base_url, api_key, timeout=60) as client:
            client.wait_until_healthy()
            _create(client, echo)
            _stream(client, chunk_size, pause, echo)
            _follow(client, base_url, echo)
    except httpx.TransportError:
        echo("demo: stopped (the server is no longer reachable)")
