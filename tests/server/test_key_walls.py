"""Walls between teams (issue 23 D): a key limited to some models finds every other model
missing, on every route, and lists show it only its own; an admin key for every model stays
possible. A route × credential matrix."""

from __future__ import annotations

import pytest

from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images

A, B = "team-a-digits", "team-b-digits"


@pytest.fixture()
def two_teams(client, digits, run_jobs):
    jobs = {}
    for name in (A, B):
        client.post(
            "/v1/models", json={**DIGITS_MODEL, "name": name, "epochs": 1}
        ).raise_for_status()
        client.post(
            f"/v1/models/{name}/chunks?split=train",
            content=npz_body(digits.train.x[:300], digits.train.y[:300]),
            headers=NPZ,
        ).raise_for_status()
        assert run_jobs() == ["published"]
        jobs[name] = client.get(f"/v1/models/{name}/jobs").json()[0]["id"]
    keys = {
        "admin": client.headers["Authorization"].split()[1],
        "team-a ingest+predict": _limited(client, ["ingest", "predict"], ["team-a-*"]),
        "team-a admin": _limited(client, ["admin"], ["team-a-*"]),
    }
    return keys, jobs


def _limited(client, scopes: list[str], models: list[str]) -> str:
    answer = client.post("/v1/keys", json={"name": "t", "scopes": scopes, "models": models})
    assert answer.status_code == 201, answer.text
    return answer.json()["key"]


def _requests(digits, name: str, job: int) -> dict[str, tuple[str, str, dict]]:
    image = {"json": {"images": png_images(digits.test.x[:1])}}
    chunk = {"content": npz_body(digits.train.x[:10], digits.train.y[:10]), "headers": NPZ}
    return {
        "get model": ("GET", f"/v1/models/{name}", {}),
        "post chunk": ("POST", f"/v1/models/{name}/chunks?split=train", chunk),
        "predict": ("POST", f"/v1/models/{name}/predict", image),
        "versions": ("GET", f"/v1/models/{name}/versions", {}),
        "megabatches": ("GET", f"/v1/models/{name}/megabatches", {}),
        "jobs": ("GET", f"/v1/models/{name}/jobs", {}),
        "job by id": ("GET", f"/v1/jobs/{job}", {}),
        "metrics series": ("GET", f"/v1/models/{name}/metrics", {}),
        "promote": ("POST", f"/v1/models/{name}/versions/1/promote", {}),
        "patch": ("PATCH", f"/v1/models/{name}", {"json": {"keep_versions": 5}}),
    }


# (credential, route) → status on team A's model and on team B's; None: any success
LIMITED = {"get model": (200, 404), "post chunk": (201, 404), "predict": (200, 404)}
EXPECTED = {
    "admin": {},
    "team-a ingest+predict": {
        **LIMITED,
        "promote": (403, 403),  # the scope is checked first: no admin scope at all
        "patch": (403, 403),
    },
    "team-a admin": {**LIMITED, "promote": (200, 404), "patch": (200, 404)},
}


def _expected(credential: str, route: str, team: int) -> int | None:
    if credential == "admin":
        return None
    return EXPECTED[credential].get(route, (None, 404))[team]


@pytest.mark.parametrize("credential", ["admin", "team-a ingest+predict", "team-a admin"])
def test_each_route_reaches_only_the_models_of_the_key(client, digits, two_teams, credential):
    keys, jobs = two_teams
    headers = {"Authorization": f"Bearer {keys[credential]}"}
    for team, name in ((0, A), (1, B)):
        for route, (method, path, extra) in _requests(digits, name, jobs[name]).items():
            expected = _expected(credential, route, team)
            answer = client.request(
                method, path, headers=headers | extra.pop("headers", {}), **extra
            )
            if expected is None:  # the admin for every model reaches everything
                assert answer.status_code < 300, (credential, route, name, answer.text)
            else:
                assert answer.status_code == expected, (credential, route, name, answer.text)
            if expected == 404:
                assert "not found" in answer.json()["detail"]  # as if it did not exist


def test_lists_show_a_limited_key_only_its_models(client, two_teams):
    keys, _ = two_teams
    for credential, names in (("admin", [A, B]), ("team-a admin", [A])):
        listed = client.get("/v1/models", headers={"Authorization": f"Bearer {keys[credential]}"})
        assert [m["name"] for m in listed.json()] == names


def test_a_limited_admin_creates_only_its_own_models_and_cannot_widen_itself(client, two_teams):
    keys, jobs = two_teams
    headers = {"Authorization": f"Bearer {keys['team-a admin']}"}
    mine = client.post("/v1/models", json={**DIGITS_MODEL, "name": "team-a-new"}, headers=headers)
    theirs = client.post("/v1/models", json={**DIGITS_MODEL, "name": "team-b-new"}, headers=headers)
    assert (mine.status_code, theirs.status_code) == (201, 403)
    wider = client.post("/v1/keys", json={"name": "x", "scopes": ["admin"]}, headers=headers)
    assert wider.status_code == 403
    assert client.get("/metrics", headers=headers).status_code == 403
    assert client.post(f"/v1/jobs/{jobs[B]}/retry", headers=headers).status_code == 404
    assert client.delete(f"/v1/models/{B}", headers=headers).status_code == 404
    me = client.get("/v1/keys/me", headers=headers).json()
    assert me["models"] == ["team-a-*"] and me["scopes"] == ["admin"]


def test_a_bad_model_pattern_is_refused_naming_it(client):
    answer = client.post("/v1/keys", json={"name": "x", "scopes": ["predict"], "models": ["A*b"]})
    assert answer.status_code == 422 and "'A*b'" in answer.json()["detail"]


def test_a_pattern_matching_every_model_is_refused_and_stores_no_key(client):
    """'*' (an empty "$TEAM*") made a key for every model (issue 42 §5)."""
    before = client.get("/v1/keys").json()
    answer = client.post("/v1/keys", json={"name": "x", "scopes": ["admin"], "models": ["*"]})
    assert answer.status_code == 422 and "matches every model" in answer.json()["detail"]
    assert client.get("/v1/keys").json() == before
