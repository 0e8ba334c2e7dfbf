"""Issue 43 §3: does the data gate stop a shuffled or class-permuted mega-batch when the live
model is weak (~20 %) and when it is fair (~60 %), and does it leave every clean one alone?

    python -m benchmarks.rule_budgets run --dataset npz:../shared/data/cifar10_small.npz \
        --tables t43_gate_weak
    python -m benchmarks.data_gate_chance --dataset npz:../shared/data/cifar10_small.npz

Replayed on recorded runs (``benchmarks.rule_budgets``: every model's predicted class on every
row after each mega-batch) with the server's own verdict (``lure_engine.data_gate.judge_data``)
and the worker's evidence: the live model (the run's model after mega-batch i) on the new
mega-batch i + 1, against its predecessors' prequential scores on the last three mega-batches
(``lure_update/data_check.py``: RECENT = 3). The corruptions of mega-batch i + 1's labels: shuffled
(a random permutation of its labels), class-permuted (every label moved to another class by one
random derangement: a class-index bug), 30 % flipped to random other classes, and class-skewed
(the rows of half the classes dropped: flagged, never quarantined). Clean: every mega-batch of
every run of §1 (every rule, budget and seed). Writes ``docs/benchmarks/data_gate_chance.md``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.quality_tables import RUNS, decode_classes
from lure_engine.alma.stream import MegaBatch, make_stream
from lure_engine.data_gate import (
    AgreementEvidence,
    DataGatePolicy,
    DataVerdict,
    Scored,
    judge_data,
    label_skew_p_value,
)
from lure_engine.label_agreement import Agreement, best_mapping
from lure_engine.seeding import derive_seed

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
RECENT = 3  # lure_update/data_check.py
CLASSES = 10
CLEAN_TABLES = ("t43_short", "t43_short_buffer", "t43_long")


def verdict(predicted, labels, recent: list[tuple[np.ndarray, np.ndarray]], seen) -> DataVerdict:
    """The worker's verdict on one mega-batch: ``predicted`` by the live model, ``labels`` as
    given; ``recent``: (predictions, labels) of the mega-batches before, each by the model live
    then; ``seen``: the stream's labels so far (the skew test)."""
    pooled = [Agreement.of(p, y, CLASSES) for p, y in recent]
    agreement = AgreementEvidence(
        Agreement.of(predicted, labels, CLASSES),
        sum(pooled[1:], pooled[0]) if pooled else None,
        best_mapping(predicted, labels, CLASSES),
    )
    correct = sum(int((p == y).sum()) for p, y in recent)
    rows = sum(len(y) for _, y in recent)
    return judge_data(
        Scored(int((predicted == labels).sum()), len(labels)),
        Scored(correct, rows) if rows else None,
        label_skew_p_value(labels, seen, CLASSES) if len(seen) else None,
        0,
        DataGatePolicy(),
        agreement,
    )


def corruptions(labels: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The new mega-batch's labels: clean and each corruption (a selector for the skewed one)."""
    derangement = (np.arange(CLASSES) + rng.integers(1, CLASSES)) % CLASSES
    flipped = labels.copy()
    flip = rng.random(len(labels)) < 0.3
    flipped[flip] = (labels[flip] + rng.integers(1, CLASSES, flip.sum())) % CLASSES
    return {
        "clean": labels,
        "shuffled": rng.permutation(labels),
        "class-permuted": derangement[labels],
        "30% flipped": flipped,
    }


def live_states(doc: dict, labels: np.ndarray, seed: int):
    """Per mega-batch i ≥ 2 of a recorded run (the server judges from the third mega-batch on
    with a reference: the second, scored by the first version): the live model's test accuracy,
    its predictions on mega-batch i + 1, the recent (predictions, labels) and the stream's labels
    so far."""
    run = doc["runs"][0]
    rows = doc["row_predictions"]["megabatches"]
    megabatches = len(run["megabatches"])
    stream = make_stream(len(labels), megabatches, derive_seed(seed, "stream"), split_seed=seed)
    predicted = [decode_classes(rows[str(i)]["train"]) for i in range(1, megabatches + 1)]
    for i in range(2, megabatches):
        new: MegaBatch = stream[i]  # 0-based: mega-batch i + 1
        recent = [
            (predicted[j - 2][stream[j - 1].ids], labels[stream[j - 1].ids])
            for j in range(max(2, i - RECENT + 1), i + 1)
        ]
        seen = np.concatenate([labels[m.ids] for m in stream[:i]])
        accuracy = run["megabatches"][i - 1]["test_accuracy"]
        yield accuracy, predicted[i - 1][new.ids], new, recent, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    args = parser.parse_args()
    from lure_engine.data import load_dataset

    labels = load_dataset(args.dataset).train.y.astype(np.int64)
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    examples: dict[str, list] = defaultdict(list)
    accuracies: dict[str, list[float]] = defaultdict(list)
    for table in (*CLEAN_TABLES, "t43_gate_weak"):
        for path in sorted((args.runs_dir / table).glob("*/*.json")):
            doc = json.loads(path.read_text())
            if "row_predictions" not in doc:
                continue
            seed = doc["runs"][0]["seed"]
            rng = np.random.default_rng(derive_seed(seed, "corruption"))
            for accuracy, predicted, new, recent, seen in live_states(doc, labels, seed):
                band = "~20 %" if accuracy < 0.3 else "~60 %" if 0.5 <= accuracy < 0.7 else None
                if band is not None:
                    accuracies[band].append(accuracy)
                cases = corruptions(labels[new.ids], rng)
                for name, given in cases.items():
                    if name != "clean" and band is None:
                        continue
                    key = (band or "other", name) if name != "clean" else ("every run", name)
                    judged = verdict(predicted, given, recent, seen)
                    counts[key][0] += judged.out_of_line
                    counts[key][1] += 1
                    if judged.out_of_line and name == "clean":
                        examples["false quarantine"].append((path.name, judged.reasons))
                if band is not None:  # half the classes only: flagged, not quarantined
                    kept = cases["clean"] < CLASSES // 2
                    judged = verdict(predicted[kept], cases["clean"][kept], recent, seen)
                    counts[band, "class-skewed"][0] += judged.out_of_line
                    counts[band, "class-skewed"][1] += 1
                    flagged = counts[band, "class-skewed (flagged)"]
                    flagged[0] += bool(judged.flags)
                    flagged[1] += 1
    write_report(counts, examples, accuracies, DOCS / "data_gate_chance")


def write_report(counts, examples, accuracies, out: Path) -> None:
    lines = [
        *(
            f"- live models {band}: {len(values)} states, test accuracy {min(values):.1%} to "
            f"{max(values):.1%} (mean {np.mean(values):.1%})"
            for band, values in sorted(accuracies.items())
        ),
        "",
        "| live model | mega-batch | quarantined | of |",
        "|---|---|---|---|",
        *(f"| {band} | {name} | {q} | {n} |" for (band, name), (q, n) in sorted(counts.items())),
    ]
    for kind, cases in examples.items():
        lines += ["", f"{kind}:", *(f"- {name}: {reasons}" for name, reasons in cases[:10])]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
