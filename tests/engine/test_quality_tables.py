"""The quality-table report's arithmetic (the runs themselves are benchmarks, not tests)."""

import json
from pathlib import Path

from benchmarks.quality_tables import (
    END,
    START,
    Scale,
    compute_to_accuracy,
    jobs_for,
    load_groups,
    run_job,
    update_marked_block,
    with_reference_rows,
)


def _megabatch(accuracy: float, curve: list[float], seconds: float = 4.0) -> dict:
    return {"test_accuracy": accuracy, "epoch_test_accuracy": curve, "train_seconds": seconds}


def _doc(runs: dict) -> dict:
    return {
        "config": {"update": {"train": {"epochs": 4}}},
        "runs": [
            {"strategy": s, "seed": seed, "megabatches": mbs} for (s, seed), mbs in runs.items()
        ],
    }


def test_compute_to_accuracy_pairs_by_seed_and_counts_misses():
    warm = [
        _megabatch(0.5, [0.2, 0.3, 0.4, 0.5]),
        _megabatch(0.6, [0.3, 0.4, 0.5, 0.6]),
        _megabatch(0.7, [0.4, 0.5, 0.6, 0.7]),
    ]
    lure = [
        _megabatch(0.5, [0.2, 0.3, 0.4, 0.5]),
        _megabatch(0.65, [0.61, 0.62, 0.63, 0.65]),
        _megabatch(0.69, [0.5, 0.6, 0.68, 0.69]),
    ]
    lines, data = compute_to_accuracy(_doc({("warm", 0): warm, ("lure", 0): lure}))
    # mega-batch 1 is skipped; lure reaches 0.6 at epoch 1 on mega-batch 2 and never reaches 0.7 on
    # 3
    assert data["lure"] == {
        "reached": 1,
        "of": 2,
        "mean_epochs": 1.0,
        "mean_seconds": 1.0,
        "last_megabatch_epochs": [None],
    }
    assert data["warm"]["reached"] == 2 and data["warm"]["mean_epochs"] == 4.0
    assert any(line.startswith("| lure | 1/2 | 1.00 | 1.0 | – |") for line in lines)


def test_every_table_has_three_seeds_and_the_paper_methods():
    jobs = jobs_for(Scale(), None)
    table1 = {(j.strategy, j.seed) for j in jobs if j.variant.table == "t1_full_replay"}
    assert table1 == {
        (s, seed) for s in ("warm", "lure", "shrink_perturb", "llf", "cold") for seed in (0, 1, 2)
    }
    resets = sorted(
        j.variant.options["keep"] for j in jobs if j.variant.table == "t7_reset_fraction"
    )
    assert resets[0] == 0.6 and resets[-1] == 0.95
    longer = {
        (j.variant.options["epochs"], j.strategy)
        for j in jobs
        if j.variant.table == "t1_longer_training"
    }
    assert longer == {(epochs, s) for epochs in (10, 20) for s in ("warm", "lure")}
    assert len({j.path(Path("r")) for j in jobs}) == len(jobs)


def test_a_job_runs_its_variant_options_and_is_written_once(tmp_path, capsys):
    scale = Scale(megabatches=2, epochs=1, longer_epochs=(2,), seeds=(0,))
    longer = next(j for j in jobs_for(scale, {"t1_longer_training"}) if j.strategy == "lure")
    job, _, accuracy = run_job(longer, "digits", scale, tmp_path)
    progress = [
        line.split(": ", 1)[1].split(", loss")[0]
        for line in capsys.readouterr().out.split("\n")
        if line
    ]
    assert progress == [f"mega-batch {i}, epoch {e} of at most 2" for i in (1, 2) for e in (1, 2)]
    written = json.loads(job.path(tmp_path).read_text())
    assert written["config"]["update"]["train"]["epochs"] == 2  # the variant's, not the scale's 1
    assert written["job"] == {"table": "t1_longer_training", "variant": "2 epochs"}
    assert written["runs"][0]["megabatches"][-1]["test_accuracy"] == accuracy
    assert list(tmp_path.rglob("*.tmp")) == []
    assert (
        load_groups(tmp_path)[("t1_longer_training", "2 epochs")]["runs"][0]["strategy"] == "lure"
    )


def test_table_one_supplies_the_reference_row_of_each_ablation_present():
    full = _doc({("warm", 0): [], ("lure", 0): [], ("llf", 0): []})
    groups = with_reference_rows(
        {("t1_full_replay", "full"): full, ("t7_reset_fraction", "5%"): _doc({})}
    )
    assert [r["strategy"] for r in groups[("t7_reset_fraction", "20%")]["runs"]] == ["lure"]
    assert ("t8_importance", "snip") not in groups  # no importance rows were run, so no reference


def test_report_block_replaces_only_the_text_between_markers(tmp_path):
    page = tmp_path / "BENCHMARKS.md"
    page.write_text(f"intro\n{START}\nold table\n{END}\nanalysis\n")
    assert update_marked_block(page, "new table")
    assert page.read_text() == f"intro\n{START}\nnew table\n{END}\nanalysis\n"
    other = tmp_path / "plain.md"
    other.write_text("no markers\n")
    assert not update_marked_block(other, "x") and other.read_text() == "no markers\n"


def test_robustness_job_saves_the_final_weights_and_profiles_them(tmp_path):
    from safetensors.torch import load_file

    scale = Scale(megabatches=2, epochs=1, seeds=(0,))
    job = next(j for j in jobs_for(scale, {"t16_robustness"}) if j.strategy == "lure")
    run_job(job, "digits", scale, tmp_path)
    written = json.loads(job.path(tmp_path).read_text())
    profile = written["robustness"]
    final = written["runs"][0]["megabatches"][-1]
    assert profile["clean_accuracy"] == final["test_accuracy"]  # the stream's final model
    assert [round(p["epsilon"] * 255) for p in profile["pgd10"]] == [1, 2, 4, 8]
    assert all(len(accuracies) == 5 for accuracies in profile["corruptions"].values())
    assert profile["flatness"][0]["sigma"] == 0.0
    assert profile["flatness"][0]["accuracy"] == final["test_accuracy"]
    assert sum(b["count"] for b in profile["reliability"]) == 359
    weights = load_file(str(job.path(tmp_path).with_suffix(".safetensors")))
    assert "fc.weight" in weights


def test_authors_choices_job_runs_with_the_papers_code_settings(tmp_path):
    scale = Scale(megabatches=2, epochs=1, seeds=(0,))
    job = next(j for j in jobs_for(scale, {"t16_authors_choices"}) if j.strategy == "lure")
    run_job(job, "digits", scale, tmp_path)
    config = json.loads(job.path(tmp_path).read_text())["config"]["update"]
    assert config["scope"] == "all_scored_conv_reset"
    assert config["importance_timing"] == "before_reset"
    assert config["importance_sample_size"] == 100
    assert config["train"]["carry_momentum"] and config["train"]["keep_best_on_validation"]
    assert config["train"]["gamma"] == 1.0


def test_a_report_that_would_drop_a_shown_table_rewrites_nothing(tmp_path):
    import pytest

    from benchmarks.quality_tables import refuse_to_drop_tables

    previous = tmp_path / "quality.json"
    previous.write_text(json.dumps({"tables": {"t1_full_replay": [], "t3_no_replay": []}}))
    only_t1 = {("t1_full_replay", "full"): {}}
    with pytest.raises(SystemExit, match="t3_no_replay, which have no job files"):
        refuse_to_drop_tables(only_t1, previous, tmp_path / "runs")
    refuse_to_drop_tables({**only_t1, ("t3_no_replay", "none"): {}}, previous, tmp_path)
    refuse_to_drop_tables(only_t1, tmp_path / "absent.json", tmp_path)  # a first report
