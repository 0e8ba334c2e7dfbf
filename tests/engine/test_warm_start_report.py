"""The issue-25 report's arithmetic on job files made here: paired differences, the share of
cold's lead a rule closes, and the steps it took against cold's."""

from __future__ import annotations

import json

import pytest

from benchmarks.warm_start_report import load_runs, summary_rows


def _job(folder, strategy: str, seed: int, accuracy: float, steps: int) -> None:
    record = {
        "test_accuracy": accuracy,
        "train_accuracy": 0.995,
        "epochs_trained": steps // 10,
        "optimizer_steps": steps,
        "cer": 100,
        "generalization_gap": 0.5,
        "ece": 0.2,
        "epoch_test_accuracy": [accuracy] * (steps // 10),
    }
    first = {**record, "optimizer_steps": 50, "epochs_trained": 5}
    runs = [{"strategy": strategy, "seed": seed, "megabatches": [first, record]}]
    (folder / f"{strategy}-seed{seed}.json").write_text(json.dumps({"runs": runs}))


def test_rows_put_cold_first_and_measure_each_rule_against_it(tmp_path):
    folder = tmp_path / "t25_penalty" / "no augmentation"
    folder.mkdir(parents=True)
    for seed, (cold, warm, dash) in enumerate([(0.50, 0.40, 0.46), (0.52, 0.42, 0.50)]):
        _job(folder, "cold", seed, cold, 400)
        _job(folder, "warm", seed, warm, 200)
        _job(folder, "dash", seed, dash, 100)
    runs = load_runs(tmp_path, "t25_penalty", "no augmentation")
    rows, data = summary_rows(runs)
    assert [row[0] for row in rows] == ["cold", "warm", "dash"]
    assert data["dash"]["minus_cold"] == pytest.approx([-0.04, -0.02])
    assert data["dash"]["closed"] == pytest.approx([0.6, 0.8])  # of a 10-point lead
    assert data["dash"]["steps_all"] == [150, 150]
    dash_row = dict(zip(["rule", "seeds", "acc", "cold", "warm", "closed"], rows[2], strict=False))
    assert dash_row["closed"] == "70 ± 10 %"
    assert rows[2][8] == "0.25"  # a quarter of cold's steps on the last update


def test_a_table_without_per_epoch_curves_gets_no_figure_and_no_budget_read(tmp_path):
    from benchmarks.warm_start_report import report

    curves = tmp_path / "runs" / "t25_penalty" / "no augmentation"
    stream = tmp_path / "runs" / "t25_stream" / "5 mega-batches"
    for folder in (curves, stream):
        folder.mkdir(parents=True)
        _job(folder, "cold", 0, 0.5, 400)
        _job(folder, "warm", 0, 0.4, 200)
    record = json.loads((stream / "cold-seed0.json").read_text())
    for megabatch in record["runs"][0]["megabatches"]:
        megabatch["epoch_test_accuracy"] = []
    (stream / "cold-seed0.json").write_text(json.dumps(record))
    (stream / "warm-seed0.json").write_text(json.dumps(record).replace('"cold"', '"warm"'))
    report(tmp_path / "runs", tmp_path / "out")
    markdown = (tmp_path / "out" / "warm_start_penalty.md").read_text()
    stream_section = markdown.split("## 3.")[1].split("## 4.")[0]
    assert "![curves]" in markdown.split("## 2.")[0] and "![curves]" not in stream_section
    assert "At half of cold's" in markdown.split("## 2.")[0]
    assert "At half of cold's" not in stream_section
    assert sorted(p.name for p in (tmp_path / "out").glob("*.png")) == [
        "warm_start_penalty_t25_penalty_no_augmentation.png"
    ]


def _recalibrated(path, final_accuracy: float) -> None:
    """The job file as the recalibration step writes it: the flag, and a final value that differs
    from its last epoch's."""
    record = json.loads(path.read_text())
    record["config"] = {"update": {"train": {"recalibrate_norm": True}}}
    record["runs"][0]["megabatches"][-1]["test_accuracy"] = final_accuracy
    path.write_text(json.dumps(record))


def test_a_table_run_with_and_without_recalibration_compares_the_last_epochs(tmp_path):
    mixed = tmp_path / "t25_penalty" / "no augmentation"
    uniform = tmp_path / "t25_stream" / "5 mega-batches"
    for folder in (mixed, uniform):
        folder.mkdir(parents=True)
        _job(folder, "cold", 0, 0.50, 400)  # a record from before the step: no recalibrate_norm
        _job(folder, "warm", 0, 0.40, 200)
    _recalibrated(mixed / "warm-seed0.json", 0.47)
    _, data = summary_rows(load_runs(tmp_path, "t25_penalty", "no augmentation"))
    assert data["warm"]["minus_cold"] == pytest.approx([-0.10])  # 0.40 at its last epoch

    _recalibrated(uniform / "cold-seed0.json", 0.51)  # every job recalibrated: finals stand
    _recalibrated(uniform / "warm-seed0.json", 0.41)
    _, data = summary_rows(load_runs(tmp_path, "t25_stream", "5 mega-batches"))
    assert data["warm"]["test_accuracy"] == pytest.approx([0.41])
    assert data["warm"]["minus_cold"] == pytest.approx([-0.10])
