"""The issue-16 report's arithmetic on made-up runs (the runs themselves are benchmarks)."""

import json

import pytest

from benchmarks.strategy_evidence import paired_difference, report, robustness_summary


def _profile(clean: float, corrupted: float) -> dict:
    bins = [
        {
            "low": i / 10,
            "high": (i + 1) / 10,
            "count": 10 * (i == 9),
            "confidence": 0.95 if i == 9 else None,
            "accuracy": clean if i == 9 else None,
        }
        for i in range(10)
    ]
    return {
        "clean_accuracy": clean,
        "ece": 0.05,
        "reliability": bins,
        "corruptions": {"blur": [corrupted] * 5, "noise": [corrupted - 0.1] * 5},
        "mca": corrupted - 0.05,
        "pgd10": [{"epsilon": e / 255, "accuracy": clean / (e + 1)} for e in (1, 2, 4, 8)],
        "flatness": [{"sigma": s, "accuracy": clean - s} for s in (0.0, 0.1, 0.2)],
    }


def _job(table: str, variant: str, strategy: str, seed: int, accuracy: float, **extra) -> dict:
    megabatch = {
        "test_accuracy": accuracy,
        "cer": 100,
        "generalization_gap": 0.05,
        "ece": 0.04,
        "train_accuracy": 0.9,
        "train_seconds": 10.0,
    }
    return {
        "config": {},
        "wall_seconds": 1.0,
        "job": {"table": table, "variant": variant},
        "runs": [{"strategy": strategy, "seed": seed, "megabatches": [megabatch]}],
        **extra,
    }


@pytest.fixture()
def runs(tmp_path):
    accuracies = {("warm", 0): 0.60, ("warm", 1): 0.62, ("lure", 0): 0.61, ("lure", 1): 0.60}
    for (strategy, seed), accuracy in accuracies.items():
        for table, variant, extra in (
            ("t16_robustness", "Table 1 setting", {"robustness": _profile(accuracy, 0.5)}),
            ("t16_authors_choices", "paper's code", {}),
        ):
            folder = tmp_path / "runs" / table / variant.replace("'", "")
            folder.mkdir(parents=True, exist_ok=True)
            doc = _job(
                table,
                variant,
                strategy,
                seed,
                accuracy + (table != "t16_robustness") * 0.1,
                **extra,
            )
            (folder / f"{strategy}-seed{seed}.json").write_text(json.dumps(doc))
    return tmp_path / "runs"


def test_lure_minus_warm_is_paired_by_seed(runs):
    from benchmarks.quality_tables import load_groups

    doc = load_groups(runs)[("t16_robustness", "Table 1 setting")]
    diff = paired_difference(doc)
    assert diff["seeds"] == [0, 1]
    assert diff["differences"] == pytest.approx([1.0, -2.0])
    summary = robustness_summary(doc)
    assert summary["lure"]["clean"] == [0.61, 0.60]  # each profile stays with its own run
    assert summary["warm"]["pgd"][8] == pytest.approx([0.60 / 9, 0.62 / 9])
    assert summary["warm"]["reliability"][9]["count"] == 20  # pooled over both seeds


def test_report_has_each_section_and_its_numbers(runs, tmp_path):
    text = report(runs, tmp_path / "evidence.md")
    assert "## §3 The paper's public code" in text and "## §4 Robustness" in text
    assert "LURE − warm, our defaults: -0.50 points (per seed +1.00, -2.00)" in text
    assert "LURE − warm, paper's code: -0.50 points" in text
    assert "| warm | 2 | 61.00 ± 1.00 | 45.00 ± 0.00 | +0.00 | 68, +0 |" in text
    assert (tmp_path / "strategy_evidence_reliability.png").exists()
    assert "t16_robustness" in json.loads((tmp_path / "evidence.json").read_text())


def _noise_job(folder, strategy: str, seed: int, accuracy: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    doc = _job("t16_label_noise_20_epochs", "40% noise, 20 epochs", strategy, seed, accuracy)
    (folder / f"{strategy}-seed{seed}.json").write_text(json.dumps(doc))


def test_seeds_whose_job_files_were_lost_are_carried_from_the_previous_report(tmp_path):
    out = tmp_path / "evidence.md"
    previous = {
        "t16_label_noise_20_epochs": {
            "warm": {
                "seed": [0, 1],
                "test_accuracy": [0.50, 0.60],
                "cer": [200.0, 300.0],
                "generalization_gap": [0.1, 0.1],
                "ece": [0.04, 0.04],
                "train_accuracy": [0.9, 0.9],
                "train_seconds": [10.0, 10.0],
            }
        }
    }
    out.with_suffix(".json").write_text(json.dumps(previous))
    runs = tmp_path / "runs"
    _noise_job(runs / "t16_label_noise_20_epochs" / "40pct", "warm", 2, 0.70)
    _noise_job(runs / "t16_label_noise_20_epochs" / "40pct", "lure", 2, 0.65)
    text = report(runs, out)
    assert "| warm | 3 (0, 1, 2) | 60.00 ± 8.16 | 200 |" in text  # mean of 0.5, 0.6, 0.7
    assert "| LURE | 1 (2) | 65.00 ± 0.00 |" in text
    assert "- LURE − warm: -5.00 points (per seed -5.00)" in text  # paired on seed 2 only
    assert (
        "Seeds carried from the previous report (their job files were not kept): warm 0, 1." in text
    )
    saved = json.loads(out.with_suffix(".json").read_text())["t16_label_noise_20_epochs"]
    assert saved["warm"]["seed"] == [0, 1, 2] and saved["lure"]["seed"] == [2]
    # a job file wins over a carried figure for the same seed
    _noise_job(runs / "t16_label_noise_20_epochs" / "40pct", "warm", 0, 0.80)
    text = report(runs, out)
    assert "| warm | 3 (0, 1, 2) | 70.00 ± 8.16 |" in text and "warm 1." in text


def test_sections_without_job_files_are_kept_as_the_previous_report_wrote_them(runs, tmp_path):
    out = tmp_path / "evidence.md"
    report(runs, out)  # §3 and §4 from job files
    empty = tmp_path / "no-runs"
    empty.mkdir()
    for _ in range(2):  # carried twice: still one note, same numbers
        text = report(empty, out)
        assert text.count("Carried from the previous report") == 2  # §3 and §4
        assert "LURE − warm, our defaults: -0.50 points (per seed +1.00, -2.00)" in text
        assert "| warm | 2 | 61.00 ± 1.00 | 45.00 ± 0.00 | +0.00 | 68, +0 |" in text
        saved = json.loads(out.with_suffix(".json").read_text())
        assert "t16_robustness" in saved and "t16_lure_minus_warm" in saved
