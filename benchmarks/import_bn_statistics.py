"""Why the first update after importing a ShuffleNetV2 went live broken, and what fixes it.

    python -m benchmarks.import_bn_statistics --dataset npz:../shared/data/cifar10_small.npz

A stand-in for a team's model (torchvision's ShuffleNetV2 x0.5, trained offline with plain PyTorch
for 40, 150 or 400 steps on 2,000 CIFAR-10 images, as ``examples/train_offline.py`` does on
digits) is imported, then updated once as the README's example does (a mega-batch of 500: 450
train rows, 2 epochs, batch 32, lr 0.01, no augmentation), with warm-starting and LURE, with and
without recomputing the BatchNorm statistics after training (``TrainConfig.recalibrate_norm``).
Reported: test accuracy on 1,000 test images, ECE, the share of images predicted with p > 0.99,
the spread of the logits and the flip rate against the imported model. Writes
``docs/benchmarks/import_bn_statistics.md``. Single-threaded; about two minutes.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks.markdown import row

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _team_model(spec, train, preprocessing, steps: int) -> torch.nn.Module:
    """Plain PyTorch, as a team trains: SGD 0.05, momentum 0.9, batches of 64."""
    from lure_engine.models import build_model
    from lure_engine.pipeline import as_tensors

    torch.manual_seed(0)
    model = build_model(spec, seed=0)
    x, y = as_tensors(train, torch.device("cpu"), preprocessing)
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    for step in range(steps):
        batch = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
        optimiser.step()
    return model


@torch.no_grad()
def _measure(model, test, preprocessing) -> tuple[dict, torch.Tensor]:
    from lure_engine.metrics import expected_calibration_error
    from lure_engine.pipeline import as_tensors

    x, y = as_tensors(test, torch.device("cpu"), preprocessing)
    logits = model.eval()(x)
    probabilities = logits.softmax(1)
    return {
        "accuracy": float((logits.argmax(1) == y).float().mean()),
        "ece": float(expected_calibration_error(probabilities, y)),
        "confident": float((probabilities.max(1).values > 0.99).float().mean()),
        "logit_std": float(logits.std()),
    }, logits.argmax(1)


def run(dataset: str) -> list[dict]:
    from lure_engine.data import ImageArrays, load_dataset
    from lure_engine.models import ModelSpec
    from lure_engine.pipeline import MegaBatchData, update_on_megabatch
    from lure_engine.preprocess import Preprocessing
    from lure_engine.trainer import TrainConfig
    from lure_engine.update import UpdateConfig, UpdateSeeds

    torch.set_num_threads(1)
    data = load_dataset(dataset)
    X, Y = data.train.x, data.train.y
    test = ImageArrays(data.test.x[:1000], data.test.y[:1000])
    spec = ModelSpec("torchvision:shufflenet_v2_x0_5", 10, 3, 32, 1.0)
    pre = Preprocessing(32, 3, *IMAGENET, "squash")
    rows, train_rows, val_rows = np.arange(2000, 2500), np.arange(2000, 2450), np.arange(2450, 2500)
    update_data = MegaBatchData(
        ImageArrays(X[rows], Y[rows]),
        ImageArrays(X[train_rows], Y[train_rows]),
        ImageArrays(X[train_rows], Y[train_rows]),
        ImageArrays(X[val_rows], Y[val_rows]),
        test,
        val_own_rows=len(val_rows),
    )
    readme = TrainConfig(epochs=2, batch_size=32, lr=0.01, hflip=False, crop_padding=0)
    results = []
    for steps in (40, 150, 400):
        team_train = ImageArrays(X[:2000], Y[:2000])
        imported, before = _measure(_team_model(spec, team_train, pre, steps), test, pre)
        results.append({"steps": steps, "update": "imported", **imported, "flip": 0.0})
        for strategy in ("warm", "lure"):
            for recalibrate in (False, True):
                train = replace(readme, recalibrate_norm=recalibrate)
                update = update_on_megabatch(
                    _team_model(spec, team_train, pre, steps),
                    spec,
                    None,
                    update_data,
                    has_parent=True,
                    parent_cer=0,
                    config=UpdateConfig(strategy=strategy, train=train),
                    seeds=UpdateSeeds.derive(0, 1),
                    device=torch.device("cpu"),
                    preprocessing=pre,
                )
                after, predicted = _measure(update.model, test, pre)
                flip = float((predicted != before).float().mean())
                label = f"{strategy}, {'recalibrated' if recalibrate else 'running averages'}"
                results.append({"steps": steps, "update": label, **after, "flip": flip})
                print(results[-1], flush=True)
    return results


def report(results: list[dict]) -> str:
    lines = [
        "| team's training steps | model | test acc (%) | ECE (%) | p > 0.99 (%) | logit std "
        "| flip rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            row(
                r["steps"],
                r["update"],
                f"{100 * r['accuracy']:.1f}",
                f"{100 * r['ece']:.1f}",
                f"{100 * r['confident']:.1f}",
                f"{r['logit_std']:.2f}",
                f"{r['flip']:.2f}",
            )
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", required=True, help="npz:PATH of the CIFAR-10 subset")
    args = parser.parse_args()
    body = report(run(args.dataset))
    DOCS.mkdir(parents=True, exist_ok=True)
    (DOCS / "import_bn_statistics.md").write_text(body + "\n")
    print(body)


if __name__ == "__main__":
    main()
