"""Promotion gates, challenger strategies and audits, through the HTTP API and the real update
function (run in-process; tests/integration runs the same flow with Celery on both databases)."""

from __future__ import annotations

import numpy as np
import torch
from sqlalchemy import select

from lure_core.records import JobRow, VersionRow
from lure_engine.gate import GateEvaluation
from lure_engine.lineage_evidence import Discordance, significantly_behind
from lure_update.lineup import Lineup
from lure_update.selection import behind_in_a_row, offered
from tests.helpers import DIGITS_MODEL, NPZ, npz_body, png_images
from tests.server.conftest import post_train


def _post_test_set(client, digits) -> None:
    answer = client.post(
        "/v1/models/digits/chunks?split=test",
        content=npz_body(digits.test.x, digits.test.y),
        headers=NPZ,
    )
    assert answer.status_code == 201, answer.text


def _versions(client, name: str = "digits") -> list[dict]:
    return client.get(f"/v1/models/{name}/versions").json()


def _create(client, **config) -> None:
    answer = client.post("/v1/models", json={**DIGITS_MODEL, **config})
    assert answer.status_code == 201, answer.text


def test_a_held_version_keeps_its_megabatch_in_the_stream(client, digits, run_jobs):
    # the data gate only warns here, and the gate's calibration rule catches what it let through
    _create(
        client,
        data_gate={"mode": "warn"},
        # plain thresholds; accuracy may dip on 90 gate rows (the next update trains on the
        # scrambled rows too), calibration may not
        promotion={"significance": None, "max_ece_increase": 0.1, "min_accuracy_delta": -0.1},
    )
    _post_test_set(client, digits)
    x, y = digits.train.x, digits.train.y
    post_train(client, x[:300], y[:300])
    post_train(client, x[300:600], y[300:600])
    assert run_jobs() == ["published", "published"]
    assert client.get("/v1/models/digits").json()["live_version"] == 2

    shuffled = np.random.default_rng(0).permutation(y[600:900])  # every label scrambled
    post_train(client, x[600:900], shuffled)
    assert run_jobs() == ["published"]
    held = _versions(client)[2]
    assert held["number"] == 3 and held["release"] == "held" and not held["live"]
    assert held["gate"]["verdict"] == "held"
    assert any("ECE rose" in reason for reason in held["gate"]["reasons"])
    numbers = held["gate"]["numbers"]
    assert numbers["ece_increase"] > 0.1
    # judged on the earlier mega-batches' 60 rows; its own 30 rows apart, where it cannot vouch
    assert numbers["gate_rows"] == {"judged": 60, "own_left_out": 30, "self_vouched": False}
    warned = client.get("/v1/models/digits/megabatches").json()[2]["data_gate"]
    assert warned["verdict"] == "warned" and "disagree" in warned["reasons"][0]
    assert "held by the promotion gate" in held["release_note"]

    predicted = client.post(
        "/v1/models/digits/predict", json={"images": png_images(digits.test.x[:4])}
    ).json()
    assert predicted["version"] == 2  # still the last version that passed

    post_train(client, x[900:1200], y[900:1200])
    assert run_jobs() == ["published"]
    after = _versions(client)[3]
    assert after["parent"] == 2  # trained from the live version, not the held one
    assert after["gate"]["verdict"] == "passed" and after["live"], after["gate"]
    # full replay: the held mega-batch's 270 train rows are trained on as if it had passed
    megabatches = client.get("/v1/models/digits/megabatches").json()
    assert after["inputs"]["train_samples"] == sum(m["n_train"] for m in megabatches)
    assert after["inputs"]["replay_from"] == 3
    assert client.get("/v1/models/digits").json()["live_version"] == 4
    exposition = client.get("/metrics").text
    assert 'lure_versions_by_gate_verdict{model="digits",verdict="held"} 1.0' in exposition
    assert 'lure_versions_by_gate_verdict{model="digits",verdict="passed"} 3.0' in exposition
    margin = after["gate"]["margin"]
    assert f'lure_gate_margin{{model="digits"}} {margin}' in exposition


def test_promoting_a_held_version_needs_admin_and_is_recorded_as_forced(
    client, digits, run_jobs, make_key
):
    _create(client, promotion={"min_accuracy_delta": 1.0})  # nothing can gain a whole 100 points
    _post_test_set(client, digits)
    post_train(client, digits.train.x[:300], digits.train.y[:300])
    post_train(client, digits.train.x[300:600], digits.train.y[300:600])
    assert run_jobs() == ["published", "published"]
    first, second = _versions(client)
    assert first["gate"]["verdict"] == "passed"  # nothing was live to compare with
    assert second["gate"]["verdict"] == "held" and second["release"] == "held"

    ingest_key = make_key("ingest", "predict")
    refused = client.post(
        "/v1/models/digits/versions/2/promote", headers={"Authorization": f"Bearer {ingest_key}"}
    )
    assert refused.status_code == 403
    forced = client.post("/v1/models/digits/versions/2/promote").json()
    assert forced["live"] and forced["gate"]["verdict"] == "forced"
    assert forced["gate"]["forced_by"] == "test-admin" and forced["gate"]["reasons"]


def _two_megabatches(client, digits, run_jobs, **config) -> list[dict]:
    _create(client, strategy="lure", challengers=["warm"], **config)
    _post_test_set(client, digits)
    for start in (0, 300):
        post_train(client, digits.train.x[start : start + 300], digits.train.y[start : start + 300])
    assert run_jobs() == ["published", "published"]
    versions = _versions(client)
    assert [(v["number"], v["megabatch"], v["strategy"]) for v in versions] == [
        (1, 1, "lure"),
        (2, 1, "warm"),
        (3, 2, "lure"),
        (4, 2, "warm"),
    ]
    return versions


def _assert_siblings_recorded(client, lure: dict, warm: dict, chosen: dict) -> None:
    other = warm if chosen is lure else lure
    assert chosen["gate"]["winner"] and not other["gate"]["winner"]
    assert other["release"] == "not_chosen"
    assert chosen["live"] == (chosen["gate"]["verdict"] == "passed")
    assert lure["seeds"] == warm["seeds"]
    assert lure["candidate_seconds"] > 0 and warm["candidate_seconds"] > 0
    job = client.get("/v1/models/digits/jobs").json()[-1]
    assert job["version"] == chosen["number"]
    assert set(job["timings"]["candidate_seconds"]) == {"lure", "warm"}
    assert lure["mask_sha256"] and warm["mask_sha256"]  # a LURE sibling can start from either


def test_without_lineages_every_candidate_starts_from_live_and_the_best_goes_live(
    client, digits, run_jobs
):
    versions = _two_megabatches(client, digits, run_jobs, lineages=False)
    lure, warm = versions[2], versions[3]
    first_winner = next(v for v in versions[:2] if v["gate"]["winner"])
    assert lure["parent"] == warm["parent"] == first_winner["number"]
    assert lure["inputs"] == warm["inputs"]  # same parent, replay, data references and threads
    assert "lineage" not in lure["gate"]
    accuracy = {v["strategy"]: v["gate"]["numbers"]["candidate"]["accuracy"] for v in (lure, warm)}
    winner = max(("lure", "warm"), key=lambda s: (accuracy[s], s == "lure"))
    _assert_siblings_recorded(client, lure, warm, lure if winner == "lure" else warm)


def test_challengers_continue_their_own_lineages(client, digits, run_jobs):
    versions = _two_megabatches(client, digits, run_jobs)
    first_lure, first_warm, lure, warm = versions
    # each strategy continues its own version, whichever went live
    assert (lure["parent"], warm["parent"]) == (1, 2)
    assert {k: v for k, v in lure["inputs"].items() if k != "parent"} == {
        k: v for k, v in warm["inputs"].items() if k != "parent"
    }  # the same replay memory and data: only the starting point differs
    assert lure["gate"]["lineage"]["extends"] and warm["gate"]["lineage"]["parent"] == 2
    pair = lure["gate"]["lineage"]["pairs"]["warm"]
    assert warm["gate"]["lineage"]["pairs"]["lure"] == {
        "only_this": pair["only_other"],
        "only_other": pair["only_this"],
    }
    # the heads (versions 1 and 2, the same weights) scored on the new rows agree on every one
    assert lure["gate"]["lineage"]["prequential_pairs"] == {
        "warm": {"only_this": 0, "only_other": 0}
    }
    # lure went live on the first (a tie goes to the primary), so lure's lineage is offered
    # unless warm's is significantly ahead on the newest evidence: the two candidates' gate rows
    # plus their heads' rows of the new mega-batch (here the heads agree on every one)
    assert first_lure["live"] is False and first_lure["gate"]["winner"]
    choice = lure["gate"]["lineage"]["choice"]
    assert choice["incumbent"] == "lure"
    assert choice["significance"] == 0.25  # the switch level, not the gate's 0.05
    assert choice["evidence"]["warm"]["test"] == "mcnemar_exact_pooled"
    assert {k: choice["evidence"]["warm"][k] for k in pair} == warm["gate"]["lineage"]["pairs"][
        "lure"
    ]
    chosen = warm if choice["switched"] else lure
    assert choice["leader"] == chosen["strategy"]
    _assert_siblings_recorded(client, lure, warm, chosen)
    # the challenger's version rebuilds from its own parent, bit for bit
    audit = client.post(f"/v1/models/digits/versions/{warm['number']}/audit").json()
    assert audit["result"] == "match" and audit["parent"] == 2, audit


def _set_evidence(worker_ctx, number: int, other: str, only_this: int, only_other: int) -> None:
    """Write what the heads' rows of many earlier mega-batches would have said."""
    with worker_ctx.sessions.begin() as session:
        version = session.scalar(select(VersionRow).where(VersionRow.number == number))
        gate = dict(version.gate)
        pairs = {other: {"only_this": only_this, "only_other": only_other}}
        gate["lineage"] = {**gate["lineage"], "prequential_pairs": pairs}
        version.gate = gate


def _rows(only_this: int, only_other: int, both: int = 100) -> tuple:
    """Two models' scores on the same rows: ``only_this`` rows only the first gets right."""
    first = [True] * only_this + [False] * only_other + [True] * both
    second = [False] * only_this + [True] * only_other + [True] * both
    return _evaluation(first), _evaluation(second)


def _evaluation(correct: list[bool]) -> GateEvaluation:
    labels = torch.zeros(len(correct), dtype=torch.long)
    predictions = torch.tensor([0 if right else 1 for right in correct])
    return GateEvaluation(labels, predictions, torch.zeros(len(correct)), 0.0)


def test_the_live_pointer_moves_when_the_newest_evidence_puts_a_challenger_ahead():
    lineup = Lineup(None, ("lure", "warm"), {}, own_lineages=True, incumbent="lure")  # type: ignore[arg-type]
    warm, lure = _rows(only_this=40, only_other=10)  # warm's candidate ahead on the gate rows
    strategy, choice = offered(lineup, {"lure": lure, "warm": warm}, {}, "accuracy", 0.05)
    assert (strategy, choice.switched, choice.incumbent) == ("warm", True, "lure")
    assert choice.evidence["warm"]["p_value"] < 0.05
    # a small lead on the gate rows alone keeps the incumbent ...
    warm, lure = _rows(only_this=12, only_other=6)
    strategy, choice = offered(lineup, {"lure": lure, "warm": warm}, {}, "accuracy", 0.05)
    assert (strategy, choice.switched) == ("lure", False)
    # ... and the heads' lead on the new mega-batch's rows, a separate sample, adds to it
    heads = {"warm": {"lure": Discordance(30, 14)}, "lure": {"warm": Discordance(14, 30)}}
    strategy, choice = offered(lineup, {"lure": lure, "warm": warm}, heads, "accuracy", 0.05)
    assert (strategy, choice.switched) == ("warm", True)
    assert (choice.evidence["warm"]["only_this"], choice.evidence["warm"]["only_other"]) == (
        42,
        20,
    )
    # the incumbent's own lead never moves the pointer away from it
    lure, warm = _rows(only_this=40, only_other=10)
    strategy, choice = offered(lineup, {"lure": lure, "warm": warm}, {}, "accuracy", 0.05)
    assert (strategy, choice.switched) == ("lure", False)


def test_a_lineage_retires_only_when_behind_on_several_mega_batches_in_a_row():
    behind, level, even = Discordance(10, 40), 0.05, Discordance(30, 31)
    assert behind_in_a_row([behind, behind, behind], level) == 3
    assert behind_in_a_row([behind, behind, even], level) == 0  # the newest one counts first
    assert behind_in_a_row([even, behind, behind], level) == 2
    # behind when summed over the stream, never on one mega-batch: not retired (summed evidence
    # retired warm-starting on a CIFAR-10 seed where it ended ahead)
    slightly = [Discordance(14, 22)] * 4  # 56 vs 88 rows summed: p < 0.01
    assert significantly_behind(sum(slightly, Discordance()), level)
    assert behind_in_a_row(slightly, level) == 0


def test_the_switch_level_is_a_setting_of_its_own_looser_than_retirement(client):
    _create(client, strategy="auto")
    lineages = client.get("/v1/models/digits/strategies").json()["lineages"]
    assert (lineages["switch_significance"], lineages["significance"]) == (0.25, 0.05)
    lineup = Lineup(None, ("lure", "warm"), {}, own_lineages=True, incumbent="lure")  # type: ignore[arg-type]
    warm, lure = _rows(only_this=12, only_other=6)  # p = 0.12: ahead at 0.25, not at 0.05
    for level, switched in ((lineages["switch_significance"], True), (0.05, False)):
        strategy, choice = offered(lineup, {"lure": lure, "warm": warm}, {}, "accuracy", level)
        assert (choice.switched, choice.to_dict()["significance"]) == (switched, level)
    strict = client.patch("/v1/models/digits", json={"switch_significance": 0.05})
    assert strict.status_code == 200, strict.text
    lineages = client.get("/v1/models/digits/strategies").json()["lineages"]
    assert lineages["switch_significance"] == 0.05
    bad = client.patch("/v1/models/digits", json={"switch_significance": 1.5})
    assert bad.status_code == 422 and "switch_significance" in bad.text


def test_auto_retires_a_lineage_significantly_behind_the_live_one(
    client, digits, run_jobs, worker_ctx
):
    # the rule before issue 43's race, kept as race "evidence"
    _create(client, strategy="auto", retire_after=1, race="evidence", challengers=["lure", "warm"])
    _post_test_set(client, digits)
    for start in (0, 300):
        post_train(client, digits.train.x[start : start + 300], digits.train.y[start : start + 300])
    assert run_jobs() == ["published"] * 2
    live = client.get("/v1/models/digits").json()["live_version"]
    versions = _versions(client)
    incumbent = next(v for v in versions if v["number"] == live)["strategy"]
    challenger = next(v for v in versions[2:] if v["strategy"] != incumbent)
    # one mega-batch of evidence, not significant: both still train
    assert client.get("/v1/models/digits/strategies").json()["retired"] == []
    _set_evidence(worker_ctx, challenger["number"], incumbent, 2, 30)
    assert client.get("/v1/models/digits/strategies").json()["retired"] == [challenger["strategy"]]
    post_train(client, digits.train.x[600:900], digits.train.y[600:900])
    assert run_jobs() == ["published"]
    assert [v["strategy"] for v in _versions(client) if v["megabatch"] == 3] == [incumbent]


def test_auto_without_lineages_retires_a_strategy_after_k_losses_in_a_row(client, digits, run_jobs):
    # ranked by ECE, a continuous score: the second mega-batch has a loser (30 gate rows' accuracy
    # ties often)
    _create(
        client,
        strategy="auto",
        challengers=["lure", "warm"],
        retire_after=1,
        lineages=False,
        promotion={"rank_by": "ece"},
    )
    _post_test_set(client, digits)
    for start in (0, 300, 600):
        post_train(client, digits.train.x[start : start + 300], digits.train.y[start : start + 300])
    assert run_jobs() == ["published"] * 3
    per_megabatch: dict[int, list[str]] = {}
    for v in _versions(client):
        per_megabatch.setdefault(v["megabatch"], []).append(v["strategy"])
    assert per_megabatch[1] == ["lure", "warm"]
    # the first mega-batch has nothing to unlearn: both train the same weights, the tie goes to
    # the primary and is recorded as a tie, not a loss, so warm still trains on the second
    first = [v for v in _versions(client) if v["megabatch"] == 1]
    assert first[0]["sha256"] == first[1]["sha256"]
    assert first[1]["gate"]["numbers"]["same_weights_as"] == "lure"  # trained once, not twice
    # and training warm itself, as an audit does, gives those weights bit for bit
    audit = client.post(f"/v1/models/digits/versions/{first[1]['number']}/audit").json()
    assert audit["result"] == "match", audit
    assert first[1]["gate"]["tied"] and not first[1]["gate"]["winner"]
    assert per_megabatch[2] == ["lure", "warm"]
    # whichever lost the second has lost once in a row and is retired: one candidate trains
    second = {v["strategy"]: v["gate"] for v in _versions(client) if v["megabatch"] == 2}
    loser = next(s for s, gate in second.items() if not gate["winner"])
    assert not second[loser]["tied"]
    assert per_megabatch[3] == [next(s for s in second if s != loser)]
    strategies = client.get("/v1/models/digits/strategies").json()
    assert strategies["retired"] == [loser]
    assert sum(strategies["wins"].values()) == 3 and strategies["wins"]["lure"] >= 1


def test_patch_changes_what_may_change_and_names_what_may_not(client, model):
    changed = client.patch(
        "/v1/models/digits",
        json={"challengers": ["warm"], "promotion": {"max_flip_rate": 0.3}},
    )
    assert changed.status_code == 200, changed.text
    config = changed.json()["config"]
    assert config["challengers"] == ["warm"]
    assert config["promotion"]["max_flip_rate"] == 0.3
    assert config["promotion"]["min_accuracy_delta"] == -0.01  # the policy's other defaults

    fixed = client.patch("/v1/models/digits", json={"megabatch_size": 10, "width": 2})
    assert fixed.status_code == 422
    assert "megabatch_size" in fixed.text and "width" in fixed.text
    assert "cannot change" in fixed.text
    bad = client.patch("/v1/models/digits", json={"promotion": {"max_flip_rate": 7}})
    assert bad.status_code == 422 and "max_flip_rate" in bad.text
    retire = client.patch("/v1/models/digits", json={"retire_after": 2})
    assert retire.status_code == 422 and "auto" in retire.text
    assert client.get("/v1/models/digits").json()["config"]["challengers"] == ["warm"]


def test_an_audit_rebuilds_a_version_bit_for_bit_and_reports_a_tampered_record(
    client, two_versions, worker_ctx
):
    for number in (1, 2):
        report = client.post(f"/v1/models/digits/versions/{number}/audit").json()
        assert report["result"] == "match", report
        assert report["rebuilt_sha256"] == report["recorded_sha256"]

    with worker_ctx.sessions.begin() as session:
        version = session.scalar(select(VersionRow).where(VersionRow.number == 2))
        version.seeds = {**version.seeds, "train": version.seeds["train"] + 1}
    report = client.post("/v1/models/digits/versions/2/audit").json()
    assert report["result"] == "mismatch"
    difference = report["first_difference"]
    assert difference["max_abs_difference"] > 0 and difference["tensor"]

    with worker_ctx.sessions.begin() as session:
        job = session.scalar(select(JobRow).order_by(JobRow.id.desc()))
        assert job.version == 2
    assert client.post("/v1/models/digits/versions/9/audit").status_code == 404


def test_an_audit_reports_a_replaced_checkpoint_although_the_rebuild_matches_the_record(
    client, two_versions, worker_ctx, settings
):
    with worker_ctx.sessions() as session:
        version = session.scalar(select(VersionRow).where(VersionRow.number == 2))
    path = settings.blob_dir / version.checkpoint_key
    data = bytearray(path.read_bytes())
    data[-64:] = bytes(b ^ 0xFF for b in data[-64:])
    path.write_bytes(bytes(data))
    report = client.post("/v1/models/digits/versions/2/audit").json()
    assert report["rebuilt_sha256"] == report["recorded_sha256"]  # the records are intact ...
    assert report["result"] == "mismatch"  # ... the file served is not
    assert "stored checkpoint fails its recorded sha256" in report["reason"]
