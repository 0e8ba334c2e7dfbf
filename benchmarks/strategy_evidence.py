"""Issue 16's evidence in one report: where (if anywhere) LURE beats warm-starting at CPU scale.

    python -m benchmarks.strategy_evidence

Reads the finished jobs of ``benchmarks.quality_tables`` (tables ``t16_*``) and writes
``docs/benchmarks/strategy_evidence.md`` (+ ``.json`` and PNGs): the warm-start penalty (§1), 40 %
label noise at 20 epochs (§2), the paper's public-code choices against our defaults (§3) and the
robustness profile of each final model (§4: corruptions, PGD-10, flatness, calibration). Every
figure is a mean ± population std over the seeds that have finished, and says how many those are.

Finished jobs live in ``docs/benchmarks/quality_runs/`` (committed). Earlier runs were kept only on
machines that are gone; their figures survive in the previous report (``strategy_evidence.json``
and ``.md``). So the report *carries* what the runs folder lacks: per-seed final metrics of a
seed with no job file are taken from the previous JSON (and said so under the table), and a
section with no job files at all is kept as the previous report wrote it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.markdown import mean_std
from benchmarks.plotting import pyplot, save
from benchmarks.quality_tables import DOCS, METHOD_ORDER, RUNS, load_groups

NAMES = {
    "warm": "warm",
    "lure": "LURE",
    "shrink_perturb": "S&P",
    "llf": "LLF",
    "cold": "cold",
}
# The paper's Section 6 mCA on CIFAR-10-C (BL = warm-start), for the table's last column.
PAPER_MCA = {"warm": 68.0, "llf": 72.0, "shrink_perturb": 71.0, "lure": 74.0}


def _ordered(strategies) -> list[str]:
    return sorted(strategies, key=lambda s: METHOD_ORDER.index(s) if s in METHOD_ORDER else 99)


def final_metrics(doc: dict) -> dict[str, dict[str, list[float]]]:
    """strategy → metric → one value per seed, after the stream's last mega-batch."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in sorted(doc["runs"], key=lambda r: r["seed"]):
        last = run["megabatches"][-1]
        metrics = out[run["strategy"]]
        metrics["seed"].append(run["seed"])
        for key in ("test_accuracy", "cer", "generalization_gap", "ece", "train_accuracy"):
            metrics[key].append(float(last[key]))
        metrics["train_seconds"].append(sum(m["train_seconds"] for m in run["megabatches"]))
    return out


def carried_seeds(
    fresh: dict[str, dict[str, list[float]]], previous: dict | None
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[int]]]:
    """``fresh`` plus each seed the previous report had and the runs folder lacks.

    Returns the merged metrics (seeds in order) and strategy → the seeds that were carried."""
    merged: dict[str, dict[str, list[float]]] = {}
    carried: dict[str, list[int]] = {}
    for strategy in set(fresh) | set(previous or {}):
        rows = {}
        for source, is_carried in (
            ((previous or {}).get(strategy), True),
            (fresh.get(strategy), False),
        ):
            if not source:
                continue
            for i, seed in enumerate(source["seed"]):
                rows[int(seed)] = ({k: v[i] for k, v in source.items()}, is_carried)
        merged[strategy] = defaultdict(list)
        for seed in sorted(rows):
            values, is_carried = rows[seed]
            for key, value in values.items():
                merged[strategy][key].append(value)
            if is_carried:
                carried.setdefault(strategy, []).append(seed)
    return merged, carried


def stream_table(metrics: dict[str, dict[str, list[float]]], title: str) -> list[str]:
    """One row per method: seeds, accuracy, CER, gap, ECE (mean ± std)."""
    lines = [
        f"| {title} | seeds | test acc (%) | CER | gen. gap (points) | ECE (%) | train s/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for strategy in _ordered(metrics):
        m = metrics[strategy]
        lines.append(
            f"| {NAMES.get(strategy, strategy)} | {len(m['seed'])} "
            f"({', '.join(map(str, m['seed']))}) | {mean_std(m['test_accuracy'], 100)} "
            f"| {np.mean(m['cer']):,.0f} | {mean_std(m['generalization_gap'], 100, digits=1)} "
            f"| {mean_std(m['ece'], 100)} | {np.mean(m['train_seconds']):,.0f} |"
        )
    return lines


def paired_difference(doc: dict, a: str = "lure", b: str = "warm") -> dict | None:
    """a − b in test accuracy (points), seed by seed (same stream and initial model per seed)."""
    return paired_from_metrics(final_metrics(doc), a, b)


def paired_from_metrics(metrics: dict, a: str = "lure", b: str = "warm") -> dict | None:
    """``paired_difference`` on final metrics (strategy → metric → one value per seed)."""
    if a not in metrics or b not in metrics:
        return None
    left = dict(zip(metrics[a]["seed"], metrics[a]["test_accuracy"], strict=True))
    right = dict(zip(metrics[b]["seed"], metrics[b]["test_accuracy"], strict=True))
    seeds = sorted(set(left) & set(right))
    if not seeds:
        return None
    diffs = [100 * (left[s] - right[s]) for s in seeds]
    return {"seeds": seeds, "differences": diffs, "mean": float(np.mean(diffs))}


def _profiles(doc: dict) -> dict[str, list[dict]]:
    """strategy → the robustness profile of each seed's final model."""
    out: dict[str, list[dict]] = defaultdict(list)
    for run, profile in zip(doc["runs"], doc["robustness"], strict=True):
        out[run["strategy"]].append(profile)
    return out


def robustness_summary(doc: dict) -> dict[str, dict]:
    """strategy → mean ± std of clean accuracy, mCA, accuracy per severity, PGD, flatness, ECE."""
    summary = {}
    for strategy, profiles in _profiles(doc).items():
        severities = np.array(
            [np.mean(list(p["corruptions"].values()), axis=0) for p in profiles]
        )  # seeds × 5
        by_type = {
            name: [float(np.mean(p["corruptions"][name])) for p in profiles]
            for name in profiles[0]["corruptions"]
        }
        summary[strategy] = {
            "seeds": len(profiles),
            "clean": [p["clean_accuracy"] for p in profiles],
            "ece": [p["ece"] for p in profiles],
            "mca": [p["mca"] for p in profiles],
            "severity": severities.tolist(),
            "by_type": by_type,
            "pgd": {
                round(e["epsilon"] * 255): [p["pgd10"][i]["accuracy"] for p in profiles]
                for i, e in enumerate(profiles[0]["pgd10"])
            },
            "flatness": {
                f["sigma"]: [p["flatness"][i]["accuracy"] for p in profiles]
                for i, f in enumerate(profiles[0]["flatness"])
            },
            "reliability": _pooled_bins([p["reliability"] for p in profiles]),
        }
    return summary


def _pooled_bins(per_seed: list[list[dict]]) -> list[dict]:
    """Reliability bins summed over seeds (count-weighted confidence and accuracy)."""
    pooled = []
    for bins in zip(*per_seed, strict=True):
        count = sum(b["count"] for b in bins)
        pooled.append(
            {
                "low": bins[0]["low"],
                "high": bins[0]["high"],
                "count": count,
                "confidence": sum(b["count"] * (b["confidence"] or 0) for b in bins) / count
                if count
                else None,
                "accuracy": sum(b["count"] * (b["accuracy"] or 0) for b in bins) / count
                if count
                else None,
            }
        )
    return pooled


def robustness_tables(summary: dict[str, dict]) -> list[str]:
    lines = [
        "| method | seeds | clean acc (%) | mCA (%) | mCA − warm (points) | paper mCA (%), − BL "
        "| severity 1 / 3 / 5 (%) | PGD-10 ε = 1, 2, 4, 8 /255 (%) | ECE (%) | mCA ÷ clean |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    warm_mca = 100 * np.mean(summary["warm"]["mca"]) if "warm" in summary else None
    for strategy in _ordered(summary):
        s = summary[strategy]
        severity = np.asarray(s["severity"]) * 100
        pgd = " / ".join(f"{100 * np.mean(v):.1f}" for v in s["pgd"].values())
        versus = f"{100 * np.mean(s['mca']) - warm_mca:+.2f}" if warm_mca is not None else "–"
        paper = PAPER_MCA.get(strategy)
        paper_cell = f"{paper:.0f}, {paper - PAPER_MCA['warm']:+.0f}" if paper else "–"
        lines.append(
            f"| {NAMES.get(strategy, strategy)} | {s['seeds']} | {mean_std(s['clean'], 100)} "
            f"| {mean_std(s['mca'], 100)} | {versus} | {paper_cell} "
            f"| {severity[:, 0].mean():.1f} / {severity[:, 2].mean():.1f} / "
            f"{severity[:, 4].mean():.1f} | {pgd} | {mean_std(s['ece'], 100)} "
            f"| {np.mean(np.asarray(s['mca']) / np.asarray(s['clean'])):.3f} |"
        )
    types = list(next(iter(summary.values()))["by_type"])
    lines += [
        "",
        "| method | " + " | ".join(t.replace("_", " ") for t in types) + " |",
        "|---|" + "---|" * len(types),
    ]
    for strategy in _ordered(summary):
        by_type = summary[strategy]["by_type"]
        cells = [f"{100 * np.mean(by_type[t]):.1f}" for t in types]
        lines.append(f"| {NAMES.get(strategy, strategy)} | " + " | ".join(cells) + " |")
    sigmas = list(next(iter(summary.values()))["flatness"])
    lines += [
        "",
        "| method | "
        + " | ".join(f"σ = {sigma:g}" for sigma in sigmas)
        + " | drop at σ = 0.2 (points) |",
        "|---|" + "---|" * (len(sigmas) + 1),
    ]
    for strategy in _ordered(summary):
        flat = summary[strategy]["flatness"]
        cells = [f"{100 * np.mean(flat[sigma]):.1f}" for sigma in sigmas]
        drop = 100 * (np.mean(flat[0.0]) - np.mean(flat.get(0.2, flat[0.0])))
        lines.append(
            f"| {NAMES.get(strategy, strategy)} | " + " | ".join(cells) + f" | {drop:.1f} |"
        )
    return lines


def plot_robustness(summary: dict[str, dict], folder: Path) -> list[Path]:
    plt = pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4))
    for strategy in _ordered(summary):
        s, label = summary[strategy], NAMES.get(strategy, strategy)
        severity = np.asarray(s["severity"]) * 100
        axes[0].errorbar(range(1, 6), severity.mean(0), severity.std(0), marker="o", label=label)
        eps = list(s["pgd"])
        pgd = np.asarray(list(s["pgd"].values())) * 100
        axes[1].errorbar(eps, pgd.mean(1), pgd.std(1), marker="o", label=label)
        sigmas = list(s["flatness"])
        flat = np.asarray(list(s["flatness"].values())) * 100
        axes[2].errorbar(sigmas, flat.mean(1), flat.std(1), marker="o", label=label)
    axes[0].set(xlabel="corruption severity", ylabel="accuracy (%)", title="Common corruptions")
    axes[1].set(xlabel="ε (/255)", ylabel="accuracy (%)", title="PGD-10 (L∞)")
    axes[2].set(xlabel="σ (relative weight noise)", ylabel="accuracy (%)", title="Flatness")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend()
    curves = folder / "strategy_evidence_robustness.png"
    save(figure, curves)

    figure, axes = plt.subplots(1, len(summary), figsize=(4 * len(summary), 4))
    for axis, strategy in zip(np.atleast_1d(axes), _ordered(summary), strict=True):
        bins = [b for b in summary[strategy]["reliability"] if b["count"]]
        centres = [(b["low"] + b["high"]) / 2 for b in bins]
        axis.bar(centres, [b["accuracy"] for b in bins], width=0.09, alpha=0.7, label="accuracy")
        axis.plot([0, 1], [0, 1], "k--", label="perfect calibration")
        axis.plot(centres, [b["confidence"] for b in bins], "ro", label="mean confidence")
        ece = 100 * np.mean(summary[strategy]["ece"])
        axis.set(
            xlabel="confidence",
            ylabel="accuracy",
            title=f"{NAMES.get(strategy, strategy)} (ECE {ece:.1f} %)",
            xlim=(0, 1),
            ylim=(0, 1),
        )
        axis.legend(fontsize=7)
    diagrams = folder / "strategy_evidence_reliability.png"
    save(figure, diagrams)
    return [curves, diagrams]


# (table, variant, key in the JSON, heading): the stream tables, each one row per method
STREAM_SECTIONS = (
    ("t16_warm_penalty", "20 epochs", "t16_warm_penalty", "§1 warm-start penalty: cold, 20 epochs"),
    (
        "t16_label_noise_20_epochs",
        "40% noise, 20 epochs",
        "t16_label_noise_20_epochs",
        "§2 40 % label noise, 20 epochs",
    ),
    (
        "t16_label_noise_20pct",
        "20% noise, 20 epochs",
        "t16_label_noise_20pct",
        "§2 20 % label noise, 20 epochs",
    ),
    (
        "t16_width",
        "width 0.25, 10 epochs",
        "t16_width",
        "§5 width 0.25 (4× the channels), 10 epochs",
    ),
    ("t16_long_stream", "25 mega-batches", "t16_long_stream", "§5 25 mega-batches, 4 epochs"),
)
AUTHORS_HEADING = "§3 The paper's public code against our defaults (Table 1's setting, 4 epochs)"
ROBUSTNESS_HEADING = "§4 Robustness and calibration of the final models (Table 1's setting)"
CARRIED_NOTE = (
    "*Carried from the previous report: this section's job files were not kept (they lived on a "
    "machine that is gone).*"
)


def previous_report(out: Path) -> tuple[dict, dict[str, list[str]]]:
    """The last report's JSON and its markdown sections (heading → lines), if there is one."""
    data = (
        json.loads(out.with_suffix(".json").read_text())
        if out.with_suffix(".json").exists()
        else {}
    )
    sections: dict[str, list[str]] = {}
    heading = None
    for line in out.read_text().splitlines() if out.exists() else []:
        if line.startswith("## "):
            heading = line[3:]
            sections[heading] = []
        elif heading is not None:
            sections[heading].append(line)
    return data, sections


def _carried_section(heading: str, old: dict[str, list[str]]) -> list[str]:
    if heading not in old:
        return []
    body = [line for line in old[heading] if line != CARRIED_NOTE]
    while body and not body[0]:
        body.pop(0)
    return [f"## {heading}", "", CARRIED_NOTE, "", *body]


def _stream_sections(groups: dict, previous: dict, data: dict, part: str) -> list[str]:
    """The stream tables whose heading starts with ``part`` (§1, §2, §5)."""
    lines = []
    for table, variant, key, heading in STREAM_SECTIONS:
        if not heading.startswith(part):
            continue
        doc = groups.get((table, variant))
        metrics, carried = carried_seeds(final_metrics(doc) if doc else {}, previous.get(key))
        if not metrics:
            continue
        data[key] = metrics
        lines += [f"## {heading}", "", *stream_table(metrics, "method"), ""]
        for other in _ordered(metrics):
            diff = paired_from_metrics(metrics, other, "warm") if other != "warm" else None
            if diff:
                per_seed = ", ".join(f"{d:+.2f}" for d in diff["differences"])
                lines.append(
                    f"- {NAMES.get(other, other)} − warm: {diff['mean']:+.2f} points "
                    f"(per seed {per_seed})"
                )
        if "warm" in metrics and len(metrics) > 1:
            lines.append("")
        if carried:
            seeds = "; ".join(
                f"{NAMES.get(s, s)} {', '.join(map(str, carried[s]))}" for s in _ordered(carried)
            )
            lines += [
                f"Seeds carried from the previous report (their job files were not kept): {seeds}.",
                "",
            ]
    return lines


def _authors_section(groups: dict, previous: dict, old: dict, data: dict) -> list[str]:
    default = groups.get(("t16_robustness", "Table 1 setting"))
    authors = [
        (label, doc) for (name, label), doc in groups.items() if name == "t16_authors_choices"
    ]
    if not (default and authors):
        if "t16_lure_minus_warm" in previous:
            data["t16_lure_minus_warm"] = previous["t16_lure_minus_warm"]
        return _carried_section(AUTHORS_HEADING, old)
    ours = {**default, "runs": [r for r in default["runs"] if r["strategy"] in ("warm", "lure")]}
    lines = [f"## {AUTHORS_HEADING}", "", *stream_table(final_metrics(ours), "our defaults"), ""]
    for label, doc in authors:
        lines += [*stream_table(final_metrics(doc), label), ""]
    for label, doc in [("our defaults", ours), *authors]:
        diff = paired_difference(doc)
        if diff:
            per_seed = ", ".join(f"{d:+.2f}" for d in diff["differences"])
            lines.append(
                f"- LURE − warm, {label}: {diff['mean']:+.2f} points (per seed {per_seed})"
            )
            data.setdefault("t16_lure_minus_warm", {})[label] = diff
    return [*lines, ""]


def _robustness_section(groups: dict, previous: dict, old: dict, data: dict, out: Path):
    default = groups.get(("t16_robustness", "Table 1 setting"))
    if not (default and default["robustness"]):
        if "t16_robustness" in previous:
            data["t16_robustness"] = previous["t16_robustness"]
        return _carried_section(ROBUSTNESS_HEADING, old)
    summary = robustness_summary(default)
    data["t16_robustness"] = summary
    plots = plot_robustness(summary, out.parent)
    return [
        f"## {ROBUSTNESS_HEADING}",
        "",
        "Corruptions: " + ", ".join(next(iter(summary.values()))["by_type"]) + " (torchvision "
        "ops; CIFAR-10-C's other types are not implemented), severities 1–5, on the 2,000 "
        "test images; mCA is the mean over types and severities. PGD-10: L∞, random start, "
        "step 2.5ε/10. Flatness: accuracy with Gaussian noise of σ × each tensor's RMS on "
        "every weight (mean of 3 draws).",
        "",
        *robustness_tables(summary),
        "",
        *(f"![{p.stem}]({p.name})" for p in plots),
        "",
    ]


def report(runs_dir: Path, out: Path) -> str:
    groups = load_groups(runs_dir)
    previous, old_sections = previous_report(out)
    lines = [
        "# Where does LURE help? (issue 16)",
        "",
        "Written by `python -m benchmarks.strategy_evidence`; runs by `python -m "
        "benchmarks.quality_tables run --dataset npz:../shared/data/cifar10_small.npz --tables "
        "t16_warm_penalty,t16_label_noise_20_epochs,t16_robustness,t16_authors_choices,"
        "t16_long_stream,t16_label_noise_20pct,t16_width` (job files in "
        "`docs/benchmarks/quality_runs/`). "
        "CIFAR-10 subset (10,000 train / 2,000 test), ResNet18 width 0.125 unless said, "
        "8 mega-batches unless said, full replay; mean ± population std over the seeds listed.",
        "",
    ]
    data: dict = {}
    for part in ("§1", "§2"):
        lines += _stream_sections(groups, previous, data, part)
    lines += _authors_section(groups, previous, old_sections, data)
    lines += _robustness_section(groups, previous, old_sections, data, out)
    lines += _stream_sections(groups, previous, data, "§5")
    out.write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps(data, indent=1, default=float))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument("--out", type=Path, default=DOCS / "strategy_evidence.md")
    args = parser.parse_args()
    print(report(args.runs_dir, args.out))


if __name__ == "__main__":
    main()
