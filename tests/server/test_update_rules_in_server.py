"""Issue 25 in the server: ``dash`` and ``l2_init`` as strategy and challengers, ``train_until``
in the recipe (create and PATCH), every version's compute recorded, and audits that rebuild from
the configuration a version recorded, not from a recipe PATCHed since (issue 24's bug)."""

from __future__ import annotations

from tests.helpers import DIGITS_MODEL
from tests.server.conftest import post_train


def _stream(client, digits, run_jobs, megabatches: int) -> list[dict]:
    for index in range(megabatches):
        rows = slice(300 * index, 300 * (index + 1))
        post_train(client, digits.train.x[rows], digits.train.y[rows])
        assert run_jobs() == ["published"]
    return client.get("/v1/models/digits/versions").json()


def test_dash_and_l2_init_train_to_a_target_and_audit_bit_for_bit(client, digits, run_jobs):
    model = {
        **DIGITS_MODEL,
        "strategy": "dash",
        "challengers": ["l2_init"],
        "train_until": {"train_accuracy": 0.9, "max_epochs": 30},
    }
    assert client.post("/v1/models", json=model).status_code == 201
    versions = _stream(client, digits, run_jobs, 2)
    assert [v["strategy"] for v in versions] == ["dash", "l2_init", "dash", "l2_init"]
    for version in versions:
        metrics = version["metrics"]
        assert 1 <= metrics["epochs_trained"] <= 30
        assert metrics["optimizer_steps"] >= metrics["epochs_trained"]
        assert version["config"]["train"]["until_train_accuracy"] == 0.9
        assert version["config"]["train"]["epochs"] == 30
        assert version["config"]["strategy"] == version["strategy"]
    assert any(v["metrics"]["epochs_trained"] < 30 for v in versions)  # the target stopped some
    for number in (3, 4):  # each rule rebuilt from its records
        audit = client.post(f"/v1/models/digits/versions/{number}/audit").json()
        assert audit["result"] == "match", audit


def test_an_audit_after_a_patch_rebuilds_the_version_as_it_was_trained(client, digits, run_jobs):
    assert client.post("/v1/models", json={**DIGITS_MODEL, "strategy": "warm"}).status_code == 201
    _stream(client, digits, run_jobs, 2)
    patched = client.patch(
        "/v1/models/digits",
        json={"challengers": ["lure"], "train_until": {"train_accuracy": 0.5, "max_epochs": 3}},
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["config"]["train_until"] == {"train_accuracy": 0.5, "max_epochs": 3}
    audit = client.post("/v1/models/digits/versions/2/audit").json()
    assert audit["result"] == "match", audit
    versions = _stream(client, digits, run_jobs, 1)  # mega-batch 3 trains by the new recipe
    assert versions[-1]["config"]["train"]["epochs"] == 3
    assert versions[-1]["metrics"]["epochs_trained"] <= 3


def test_train_until_is_validated_naming_the_field(client):
    bad = client.post(
        "/v1/models", json={**DIGITS_MODEL, "train_until": {"train_accuracy": 1.5, "max_epochs": 3}}
    )
    assert bad.status_code == 422 and "train_until.train_accuracy" in bad.json()["detail"]


def test_every_engine_option_of_the_unlearn_step_is_reachable_from_a_recipe(
    client, digits, run_jobs
):
    # issue 24: scope and reset_source reached benchmarks but not server models
    model = {**DIGITS_MODEL, "scope": "weights", "reset_source": "kaiming_uniform"}
    created = client.post("/v1/models", json=model)
    assert created.status_code == 201, created.text
    defaults = client.post("/v1/models", json={**DIGITS_MODEL, "name": "plain"}).json()["config"]
    assert (defaults["scope"], defaults["reset_source"]) == ("conv_linear_weights", "fresh_model")
    versions = _stream(client, digits, run_jobs, 2)
    assert {(v["config"]["scope"], v["config"]["reset_source"]) for v in versions} == {
        ("weights", "kaiming_uniform")
    }
    audit = client.post("/v1/models/digits/versions/2/audit").json()
    assert audit["result"] == "match", audit
    bad = client.post("/v1/models", json={**DIGITS_MODEL, "name": "bad", "scope": "biases"})
    assert bad.status_code == 422 and "scope" in bad.text


def test_importance_and_rule_options_reach_the_update_and_its_audit(client, digits, run_jobs):
    # issue 24: importance timing and sample size and each rule's own settings reached benchmarks
    # (UpdateConfig) but not server models
    model = {
        **DIGITS_MODEL,
        "strategy": "lure",
        "challengers": ["dash"],
        "importance_timing": "before_reset",
        "importance_sample_size": 64,
        "strategy_options": {"dash": {"shrink": 0.5, "alpha": 0.2}},
    }
    created = client.post("/v1/models", json=model)
    assert created.status_code == 201, created.text
    versions = _stream(client, digits, run_jobs, 2)
    configs = {v["number"]: v["config"] for v in versions}
    assert {(c["importance_timing"], c["importance_sample_size"]) for c in configs.values()} == {
        ("before_reset", 64)
    }
    by_strategy = {v["strategy"]: v["config"]["strategy_options"] for v in versions}
    assert by_strategy == {"lure": {}, "dash": {"shrink": 0.5, "alpha": 0.2}}
    plain = client.post("/v1/models", json={**DIGITS_MODEL, "name": "plain"}).json()["config"]
    assert (plain["importance_timing"], plain["importance_sample_size"]) == ("after_training", 0)
    for number in (3, 4):  # rebuilt from what each version recorded
        audit = client.post(f"/v1/models/digits/versions/{number}/audit").json()
        assert audit["result"] == "match", audit


def test_a_rule_option_out_of_range_or_unknown_is_refused_naming_it(client):
    for options, named in (
        ({"dash": {"shrink": 1.5}}, "strategy_options.dash"),
        ({"l2_init": {"tau": 1.0}}, "strategy_options.l2_init"),
        ({"shrink_perturb": {"noise": -1.0}}, "strategy_options.shrink_perturb"),
        ({"nope": {}}, "strategy_options"),
    ):
        bad = client.post("/v1/models", json={**DIGITS_MODEL, "strategy_options": options})
        assert bad.status_code == 422 and named in bad.text, bad.text
    timing = client.post("/v1/models", json={**DIGITS_MODEL, "importance_timing": "later"})
    assert timing.status_code == 422 and "importance_timing" in timing.text
    assert client.get("/v1/models/digits").status_code == 404  # nothing half-stored


def test_carried_momentum_is_stored_with_each_version_and_starts_the_next(client, digits, run_jobs):
    # issue 24: carry_momentum reached benchmarks but not server models; the buffers live with
    # each version (safetensors, sha256) so the next update, and its audit, start from them
    for name, carry in (("digits", True), ("plain", False)):
        model = {**DIGITS_MODEL, "name": name, "strategy": "warm", "carry_momentum": carry}
        assert client.post("/v1/models", json=model).status_code == 201
    for index in range(2):
        rows = slice(300 * index, 300 * (index + 1))
        for name in ("digits", "plain"):
            post_train(client, digits.train.x[rows], digits.train.y[rows], model=name)
        assert sorted(run_jobs()) == ["published", "published"]
    carried = client.get("/v1/models/digits/versions").json()
    plain = client.get("/v1/models/plain/versions").json()
    assert all(v["momentum_sha256"] for v in carried) and all(
        v["config"]["train"]["carry_momentum"] for v in carried
    )
    assert not any(v["momentum_sha256"] for v in plain)
    # the first update has no momentum to start from: the same weights; the second starts from it
    assert carried[0]["sha256"] == plain[0]["sha256"]
    assert carried[1]["sha256"] != plain[1]["sha256"]
    audit = client.post("/v1/models/digits/versions/2/audit").json()
    assert audit["result"] == "match", audit


def test_the_learning_rate_schedule_is_a_recipe_option(client, digits, run_jobs):
    model = {**DIGITS_MODEL, "strategy": "warm", "lr_milestones": [0.5], "lr_gamma": 0.5}
    assert client.post("/v1/models", json=model).status_code == 201
    (version,) = _stream(client, digits, run_jobs, 1)
    assert (version["config"]["train"]["milestones"], version["config"]["train"]["gamma"]) == (
        [0.5],
        0.5,
    )
    audit = client.post("/v1/models/digits/versions/1/audit").json()
    assert audit["result"] == "match", audit
    for bad in ([0.8, 0.4], [1.5]):
        refused = client.post("/v1/models", json={**model, "name": "bad", "lr_milestones": bad})
        assert refused.status_code == 422 and "lr_milestones" in refused.text


def test_label_smoothing_is_a_recipe_option_a_model_may_change(client, digits, run_jobs):
    """The option added to measure issue 44 (two files: its declaration and the trainer): the
    API takes it and its bounds, PATCH changes it, each version records it, audits rebuild it."""
    model = {**DIGITS_MODEL, "strategy": "warm", "label_smoothing": 0.1}
    assert client.post("/v1/models", json=model).status_code == 201
    (first,) = _stream(client, digits, run_jobs, 1)
    assert first["config"]["train"]["label_smoothing"] == 0.1
    changed = client.patch("/v1/models/digits", json={"label_smoothing": 0.0})
    assert changed.status_code == 200 and changed.json()["config"]["label_smoothing"] == 0.0
    post_train(client, digits.train.x[300:600], digits.train.y[300:600])
    assert run_jobs() == ["published"]
    second = client.get("/v1/models/digits/versions/2").json()
    assert second["config"]["train"]["label_smoothing"] == 0.0
    for number in (1, 2):
        audit = client.post(f"/v1/models/digits/versions/{number}/audit").json()
        assert audit["result"] == "match", audit
    refused = client.post("/v1/models", json={**model, "name": "bad", "label_smoothing": 1.0})
    assert refused.status_code == 422 and "label_smoothing" in refused.text
