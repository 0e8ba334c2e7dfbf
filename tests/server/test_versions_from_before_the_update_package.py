"""Issue 44 moved the update into a package of its own and derived the recipe's engine options
from one declaration; versions written before the change must still audit bit for bit, and their
model's stored recipe must still load and train. The fixture is a data folder written by the code
before it (commit 16a039b: a digits model with a DASH challenger, a learning-rate schedule, two
mega-batches, four versions; ``tests/fixtures/pre_issue44_data.zip``)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from service.settings import ServerSettings
from tests.server.conftest import post_train

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "pre_issue44_data.zip"


@pytest.fixture()
def settings(tmp_path) -> ServerSettings:
    """The server's settings on the fixture's data folder (the suite's ``client`` and
    ``run_jobs`` use them)."""
    with zipfile.ZipFile(FIXTURE) as archive:
        archive.extractall(tmp_path / "data")
    return ServerSettings(
        data_dir=tmp_path / "data", dispatch_interval_seconds=3600, warm_live_seconds=0
    )


def test_versions_written_before_the_change_audit_and_their_recipe_trains(client, digits, run_jobs):
    versions = client.get("/v1/models/digits/versions").json()
    assert [(v["number"], v["strategy"]) for v in versions] == [
        (1, "lure"), (2, "dash"), (3, "lure"), (4, "dash"),
    ]  # fmt: skip
    for version in versions:
        audit = client.post(f"/v1/models/digits/versions/{version['number']}/audit").json()
        assert audit["result"] == "match", audit
    config = client.get("/v1/models/digits").json()["config"]
    assert (config["lr_milestones"], config["lr_gamma"]) == ([0.5], 0.5)
    post_train(client, digits.train.x[600:900], digits.train.y[600:900])
    assert run_jobs() == ["published"]
    newest = client.get("/v1/models/digits/versions").json()[-2:]
    assert [v["megabatch"] for v in newest] == [3, 3]
    assert newest[0]["config"]["train"]["milestones"] == [0.5]  # the old recipe, read anew
    audit = client.post(f"/v1/models/digits/versions/{newest[-1]['number']}/audit").json()
    assert audit["result"] == "match", audit
