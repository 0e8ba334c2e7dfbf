"""Issue 43 §2 through HTTP on both databases: ``auto`` races every warm-family rule, keeping the
better half after each mega-batch, the first update trained once for all of them; who trains next
is what the race recorded, and the live version ends on the survivor's lineage."""

from __future__ import annotations

import pytest

from tests.helpers import DIGITS_MODEL, NPZ, npz_body
from tests.integration.in_process import KINDS, InProcess, admin, in_process


@pytest.fixture(params=KINDS)
def deployment(request, tmp_path, monkeypatch) -> InProcess:
    return in_process(request, request.param, tmp_path, monkeypatch)


def test_auto_races_every_warm_family_rule_by_halving_at_a_bounded_cost(deployment, digits):
    x, y = digits.train.x, digits.train.y
    with deployment.client() as client:
        admin(client).post("/v1/models", json={**DIGITS_MODEL, "strategy": "auto"})
        trained = []
        for index, start in enumerate(range(0, 1200, 300), start=1):
            body = npz_body(x[start : start + 300], y[start : start + 300])
            client.post("/v1/models/digits/chunks?split=train", content=body, headers=NPZ)
            assert deployment.run_jobs() == ["published"]
            versions = client.get("/v1/models/digits/versions").json()
            trained.append([v for v in versions if v["megabatch"] == index])
        first = trained[0]
        assert [v["strategy"] for v in first] == ["warm", "dash", "lure", "shrink_perturb", "fire"]
        assert len({v["sha256"] for v in first}) == 1  # one training: the same weights for all
        assert [len(versions) for versions in trained] == [5, 5, 3, 2]
        races = [trained[i][0]["gate"]["lineage"]["race"] for i in (1, 2, 3)]
        assert [len(race["alive"]) for race in races] == [3, 2, 1]
        assert [v["strategy"] for v in trained[2]] == races[0]["alive"]  # who was kept trained
        assert [v["strategy"] for v in trained[3]] == races[1]["alive"]
        survivor = races[2]["alive"][0]
        lineages = client.get("/v1/models/digits/strategies").json()
        assert lineages["lineages"]["race"] == "halving"
        assert lineages["lineages"]["racing"] == [survivor]
        assert sorted(lineages["retired"]) == sorted({v["strategy"] for v in first} - {survivor})
        live = client.get("/v1/models/digits").json()["live_version"]
        assert next(v for v in versions if v["number"] == live)["strategy"] == survivor
