"""Issue 28 §4: how fast the drift check finds corrupted traffic, and how often it cries wolf.

    python -m benchmarks.drift_detection --dataset npz:../shared/data/cifar10_small.npz

A ResNet-18 (width 0.25) is trained with plain SGD on 4,000 CIFAR-10 training images (1,200
steps of 64); its answers on 500 other training images are the reference, as a published
version's gate rows are. Traffic is the 2,000 test images in a random order per seed, checked
exactly as the server does (``lure_core/drift.py`` with the default policy: the last 200 answers
every 100, family-wise level 0.001):

- **clean**: the whole stream clean; every check that drifts is a false alarm;
- **drift**: 1,000 clean answers, then the other 1,000 with one of the engine's corruptions
  (``lure_engine/robustness.py``) at severity 3 or 5; the delay is how many corrupted answers
  were served before the first drifted check (missed: none within the 1,000).

Writes ``docs/benchmarks/drift_detection.md``. Single-threaded; about five minutes.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from benchmarks.markdown import row

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
SWITCH = 1000  # clean answers before the corruption starts


def _trained_model(x: torch.Tensor, y: torch.Tensor, steps: int) -> torch.nn.Module:
    from lure_engine.models import ModelSpec, build_model

    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet18", 10, 3, 32, 0.25), seed=0)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    model.train()
    for step in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def _answers(model: torch.nn.Module, x: torch.Tensor):
    from lure_core.drift import Answers

    probabilities = torch.cat([model(x[i : i + 500]).softmax(1) for i in range(0, len(x), 500)])
    top = probabilities.max(1)
    return Answers.of(top.values.numpy(), top.indices.numpy())


def _checks(reference, stream, policy) -> list[tuple[int, bool]]:
    """(answers served so far, drifted) for each check the server would make on ``stream``."""
    from lure_core.drift import Answers, compare

    out = []
    for served in range(policy.check_every, len(stream) + 1, policy.check_every):
        if served < policy.window:
            continue
        window = slice(served - policy.window, served)
        recent = Answers(stream.confidence[window], stream.predicted[window])
        out.append((served, compare(reference, recent, policy.p_value).drifted))
    return out


def _joined(first, second):
    from lure_core.drift import Answers

    return Answers(
        np.concatenate([first.confidence, second.confidence]),
        np.concatenate([first.predicted, second.predicted]),
    )


def _subset(answers, order: np.ndarray):
    from lure_core.drift import Answers

    return Answers(answers.confidence[order], answers.predicted[order])


def run(dataset: str, seeds: int, steps: int) -> dict:
    from lure_core.drift import DriftPolicy
    from lure_engine.data import load_dataset
    from lure_engine.pipeline import as_tensors
    from lure_engine.robustness import CORRUPTIONS, corrupt

    torch.set_num_threads(1)
    data = load_dataset(dataset)
    x, y = as_tensors(data.train, torch.device("cpu"), None)
    test_x, test_y = as_tensors(data.test, torch.device("cpu"), None)
    model = _trained_model(x[:4000], y[:4000], steps)
    accuracy = float((_answers(model, test_x).predicted == test_y.numpy()).mean())
    reference, policy = _answers(model, x[4000:4500]), DriftPolicy()
    clean = _answers(model, test_x)
    rng = np.random.default_rng(0)
    orders = [rng.permutation(len(test_x)) for _ in range(seeds)]
    false_alarms = [_checks(reference, _subset(clean, order), policy) for order in orders]
    results = {"accuracy": accuracy, "policy": policy.__dict__, "clean": false_alarms, "drift": {}}
    for name in CORRUPTIONS:
        for severity in (3, 5):
            corrupted = _answers(model, corrupt(test_x, name, severity, seed=0))
            delays = []
            for order in orders:
                stream = _joined(_subset(clean, order[:SWITCH]), _subset(corrupted, order[SWITCH:]))
                after = [s - SWITCH for s, drifted in _checks(reference, stream, policy) if drifted]
                delays.append(next((d for d in after if d > 0), None))
            results["drift"][f"{name} {severity}"] = {
                "delays": delays,
                "accuracy": float((corrupted.predicted == test_y.numpy()).mean()),
            }
    return results


def report(results: dict, seeds: int) -> str:
    checks = [drifted for stream in results["clean"] for _, drifted in stream]
    policy = results["policy"]
    lines = [
        "# Drift detection on CIFAR-10 (issue 28 §4)",
        "",
        "`python -m benchmarks.drift_detection --dataset npz:../shared/data/cifar10_small.npz` "
        f"(model test accuracy {100 * results['accuracy']:.1f} %; policy: window "
        f"{policy['window']}, a check every {policy['check_every']} answers, level "
        f"{policy['p_value']}; {seeds} stream orders).",
        "",
        f"**Clean stream**: {sum(checks)} false alarms in {len(checks)} checks "
        f"({100 * sum(checks) / len(checks):.2f} %).",
        "",
        "| corruption, severity | accuracy on it (%) | detected | median delay (answers) | "
        "delays |",
        "|---|---|---|---|---|",
    ]
    for name, entry in results["drift"].items():
        found = [d for d in entry["delays"] if d is not None]
        median = f"{statistics.median(found):.0f}" if found else "–"
        shown = ", ".join("missed" if d is None else str(d) for d in entry["delays"])
        lines.append(
            row(name, f"{100 * entry['accuracy']:.1f}", f"{len(found)}/{seeds}", median, shown)
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=1200)
    args = parser.parse_args()
    text = report(run(args.dataset, args.seeds, args.steps), args.seeds)
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "drift_detection.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
