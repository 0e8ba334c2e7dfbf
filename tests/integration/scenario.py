"""The end-to-end scenario both deployments must pass: three updates, lineage, predict, rollback."""

from __future__ import annotations

import time

import httpx
import numpy as np

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images


def wait_for_versions(
    client: httpx.Client, name: str, count: int, timeout: float = 300
) -> list[dict]:
    """Wait until ``name`` has ``count`` versions. ``timeout`` bounds a *stall*: the time may run
    longer while the jobs' progress keeps moving (a busy machine trains slowly, which is not a
    failure; a fixed deadline failed these tests on loaded CI machines), never while it stands."""
    deadline, seen = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        versions = client.get(f"/v1/models/{name}/versions").json()
        if len(versions) >= count:
            return versions
        jobs = client.get(f"/v1/models/{name}/jobs").json()
        failed = [j for j in jobs if j["state"] == "failed"]
        assert not failed, failed[0]["error"]
        moving = [(j["id"], j["state"], j.get("progress")) for j in jobs] + [len(versions)]
        if moving != seen:  # progress: the stall clock starts again
            seen, deadline = moving, time.monotonic() + timeout
        time.sleep(0.5)
    raise AssertionError(
        f"only {len(versions)} of {count} versions, nothing moving for {timeout}s: "
        f"{client.get(f'/v1/models/{name}/jobs').json()}"
    )


def run_scenario(base_url: str, api_key: str) -> dict:
    data = load_digits_dataset()
    name = DIGITS_MODEL["name"]
    with httpx.Client(
        base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {api_key}"}
    ) as client:
        assert client.post("/v1/models", json=DIGITS_MODEL).status_code == 201
        test = client.post(
            f"/v1/models/{name}/chunks?split=test",
            content=npz_body(data.test.x, data.test.y),
            headers=NPZ,
        )
        assert test.status_code == 201 and test.json()["accepted"] == len(data.test.x)
        sealed = []
        for start in range(0, 900, 100):
            answer = client.post(
                f"/v1/models/{name}/chunks?split=train",
                headers=NPZ,
                content=npz_body(
                    data.train.x[start : start + 100], data.train.y[start : start + 100]
                ),
            )
            assert answer.status_code == 201, answer.text
            sealed += answer.json()["sealed"]
        assert sealed == [1, 2, 3]

        versions = wait_for_versions(client, name, 3)
        assert [v["number"] for v in versions] == [1, 2, 3]
        assert [v["parent"] for v in versions] == [None, 1, 2]
        assert [v["megabatch"] for v in versions] == [1, 2, 3]
        errors = [v["metrics"]["test_errors"] for v in versions]
        assert [v["metrics"]["cer"] for v in versions] == list(np.cumsum(errors))
        for v in versions:
            assert len(v["sha256"]) == 64 and v["strategy"] == "lure"
            assert v["metrics"]["test_samples"] == len(data.test.x)
        assert versions[-1]["live"] is True

        images = png_images(data.test.x[:200])
        answer = client.post(f"/v1/models/{name}/predict", json={"images": images})
        assert answer.status_code == 200 and answer.headers["x-model-version"] == "3"
        accuracy = np.mean(
            [
                p["label"] == y
                for p, y in zip(answer.json()["predictions"], data.test.y[:200], strict=True)
            ]
        )
        assert accuracy > 0.5, f"accuracy {accuracy} does not beat chance (0.1) clearly"

        assert client.post(f"/v1/models/{name}/versions/1/promote").status_code == 200
        answer = client.post(f"/v1/models/{name}/predict", json={"images": images[:5]})
        assert answer.headers["x-model-version"] == "1" and answer.json()["version"] == 1
        return {"versions": versions, "accuracy": accuracy}
