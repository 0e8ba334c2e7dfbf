"""Gates, challengers and audits with real processes (API, Celery worker, CLI) on both databases:
a poisoned mega-batch after good ones is quarantined by the data gate before training while
``/predict`` keeps serving the version before it, the next good one passes, an admin releases the
quarantined one with ``lure megabatches release``, siblings share parent and data, and
``lure audit`` rebuilds the winner bit for bit."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from lure_engine.data import load_digits_dataset
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.integration.deployments import KINDS, make_deployment
from tests.integration.processes import lure_command
from tests.integration.scenario import wait_for_versions

pytestmark = pytest.mark.slow

# two lineages under the retirement rule before issue 43's race (race "evidence")
MODEL = {
    **DIGITS_MODEL,
    "name": "gated",
    "strategy": "auto",
    "challengers": ["lure", "warm"],
    "race": "evidence",
    "retire_after": 2,
}


def _post(client, x, y, split: str = "train") -> None:
    answer = client.post(
        f"/v1/models/gated/chunks?split={split}", content=npz_body(x, y), headers=NPZ
    )
    assert answer.status_code == 201, answer.text


def _winners(client) -> dict[int, dict]:
    """Mega-batch → the job's version (the winning candidate), once its job succeeded."""
    jobs = client.get("/v1/models/gated/jobs").json()
    versions = {v["number"]: v for v in client.get("/v1/models/gated/versions").json()}
    return {j["megabatch"]: versions[j["version"]] for j in jobs if j["state"] == "succeeded"}


def _wait_for_megabatch(client, index: int) -> dict:
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        winners = _winners(client)
        if index in winners:
            return winners[index]
        failed = [j for j in client.get("/v1/models/gated/jobs").json() if j["state"] == "failed"]
        assert not failed, failed[0]["error"]
        time.sleep(0.5)
    raise AssertionError(f"mega-batch {index} was never published")


def _wait_for_job_state(client, index: int, state: str) -> dict:
    import time

    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        jobs = [j for j in client.get("/v1/models/gated/jobs").json() if j["megabatch"] == index]
        if jobs and jobs[0]["state"] == state:
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"the job of mega-batch {index} never became {state}")


def _parent(client, version: dict) -> tuple[int, str]:
    """The mega-batch and strategy of a version's parent."""
    parent = client.get(f"/v1/models/gated/versions/{version['parent']}").json()
    return parent["megabatch"], parent["strategy"]


def _lure(deployment, *args: str) -> str:
    env = deployment.env | {"LURE_URL": deployment.url, "LURE_API_KEY": deployment.key}
    result = subprocess.run(
        lure_command(*args), env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_gate_challengers_and_audit_across_processes(kind, request, tmp_path):
    deployment = make_deployment(kind, request, tmp_path)
    deployment.start_worker()
    data = load_digits_dataset()
    x, y = data.train.x, data.train.y
    try:
        with deployment.client() as client:
            assert client.post("/v1/models", json=MODEL).status_code == 201
            _post(client, data.test.x, data.test.y, split="test")
            _post(client, x[:300], y[:300])
            _post(client, x[300:600], y[300:600])
            wait_for_versions(client, "gated", 1)
            good = _wait_for_megabatch(client, 2)
            assert good["live"]

            _post(client, x[600:900], np.random.default_rng(1).permutation(y[600:900]))
            _wait_for_job_state(client, 3, "quarantined")
            assert client.get("/v1/models/gated").json()["live_version"] == good["number"]
            listed = _lure(deployment, "megabatches", "list", "--model", "gated")
            assert "quarantined: the live model gets" in " ".join(listed.split())
            answer = client.post(
                "/v1/models/gated/predict", json={"images": png_images(data.test.x[:3])}
            ).json()
            assert answer["version"] == good["number"]

            _post(client, x[900:1200], y[900:1200])
            recovered = _wait_for_megabatch(client, 4)
            # it continues its lineage's head from mega-batch 2 (the live one, or the other
            # lineage's when the pointer switches): nothing was trained on the quarantined rows
            assert _parent(client, recovered) == (2, recovered["strategy"])
            assert recovered["gate"]["verdict"] == "passed" and recovered["live"]
            released = _lure(deployment, "megabatches", "release", "3", "--model", "gated")
            assert "mega-batch 3 of gated released" in released
            late = _wait_for_megabatch(client, 3)  # trained after mega-batch 4, from its heads
            assert _parent(client, late) == (4, late["strategy"])

            versions = client.get("/v1/models/gated/versions").json()
            by_number = {v["number"]: v for v in versions}
            for index in (1, 2, 3, 4):
                siblings = [v for v in versions if v["megabatch"] == index]
                # each strategy continues its own lineage on the same data and replay memory
                for v in siblings:
                    parent = by_number.get(v["parent"])
                    assert parent is None or parent["strategy"] == v["strategy"], v
                common = [{k: x for k, x in v["inputs"].items() if k != "parent"} for v in siblings]
                assert all(c == common[0] for c in common)
                assert sum(v["gate"]["winner"] for v in siblings) == 1
            assert {v["strategy"] for v in versions if v["megabatch"] == 1} == {"lure", "warm"}
            summary = client.get("/v1/models/gated/strategies").json()
            assert sum(summary["wins"].values()) == 4

        number = str(recovered["number"])
        audit = _lure(deployment, "audit", "--model", "gated", "--version", number)
        assert '"result": "match"' in audit
        challenger = next(v for v in versions if v["megabatch"] == 4 and not v["gate"]["winner"])
        number = str(challenger["number"])  # rebuilt from its own lineage's parent
        audit = _lure(deployment, "audit", "--model", "gated", "--version", number)
        assert '"result": "match"' in audit
    except BaseException:
        print(deployment.logs())
        raise
    finally:
        deployment.stop()
