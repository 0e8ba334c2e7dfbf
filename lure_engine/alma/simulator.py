"""The ALMA simulator: run forgetting strategies through a mega-batch stream and record metrics.

For each (strategy, seed): the same initial model and the same stream for every strategy, an update
per mega-batch through :func:`lure_engine.update.run_update`, and an evaluation after each one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from lure_engine.alma.stream import MegaBatch, make_stream
from lure_engine.data import Dataset, to_tensor
from lure_engine.metrics import cumulative_error_rate, evaluate, generalization_gap
from lure_engine.models import ModelSpec, build_model
from lure_engine.replay import make_replay
from lure_engine.robustness import symmetric_label_noise
from lure_engine.seeding import derive_seed, seed_everything
from lure_engine.trainer import Progress
from lure_engine.update import UpdateConfig, UpdateSeeds, run_update


@dataclass(frozen=True)
class AlmaConfig:
    model: str = "resnet18"
    width: float = 1.0
    strategies: tuple[str, ...] = ("warm", "lure")
    replay: str = "full"
    megabatches: int = 8
    seeds: tuple[int, ...] = (0,)
    label_noise: float = 0.0
    # Record test accuracy after every epoch (costs one test pass per epoch): compute-to-accuracy.
    epoch_curve: bool = False
    update: UpdateConfig = field(default_factory=UpdateConfig)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MegaBatchRecord:
    index: int
    train_samples: int
    test_accuracy: float
    test_errors: int
    cer: int
    train_accuracy: float
    val_accuracy: float
    generalization_gap: float
    ece: float
    nll: float
    prequential_accuracy: float
    train_seconds: float
    unlearn_seconds: float
    reset_seconds: float
    importance_seconds: float
    epoch_test_accuracy: list[float] = field(default_factory=list)


# Called after each mega-batch with (strategy, seed, record); and with trainer progress.
MegaBatchCallback = Callable[[str, int, MegaBatchRecord], None]
StepCallback = Callable[[str, int, int, Progress], None]


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run_stream(
    dataset: Dataset,
    config: AlmaConfig,
    strategy: str,
    seed: int,
    *,
    device: torch.device,
    on_megabatch: MegaBatchCallback | None = None,
    on_step: StepCallback | None = None,
) -> list[MegaBatchRecord]:
    """One strategy, one seed, the whole stream."""
    seed_everything(seed)
    spec = ModelSpec(config.model, dataset.num_classes, dataset.channels, dataset.image_size, config.width)
    update_config = UpdateConfig(**{**asdict(config.update), "strategy": strategy,
                                    "train": config.update.train})
    stream: list[MegaBatch] = make_stream(len(dataset.train), config.megabatches, derive_seed(seed, "stream"))
    labels = dataset.train.y
    if config.label_noise > 0:
        labels = symmetric_label_noise(labels, config.label_noise, dataset.num_classes, derive_seed(seed, "noise"))
    x_all = to_tensor(dataset.train.x, device)
    y_all = torch.from_numpy(labels).to(device)
    x_test = to_tensor(dataset.test.x, device)
    y_test = torch.from_numpy(dataset.test.y).to(device)

    model = build_model(spec, seed=derive_seed(seed, "init")).to(device)
    replay = make_replay(config.replay, seed=derive_seed(seed, "replay"))
    mask, records, seen_val = None, [], np.empty(0, dtype=np.int64)
    for megabatch in stream:
        all_ids = torch.from_numpy(np.concatenate([megabatch.train_ids, megabatch.val_ids])).to(device)
        prequential = evaluate(model, x_all[all_ids], y_all[all_ids]).accuracy
        train_ids = torch.from_numpy(np.concatenate([replay.ids(), megabatch.train_ids])).to(device)
        mb_ids = torch.from_numpy(megabatch.train_ids).to(device)
        seen_val = np.concatenate([seen_val, megabatch.val_ids])
        val_ids = torch.from_numpy(seen_val).to(device)

        def progress(p: Progress, index: int = megabatch.index) -> None:
            if on_step is not None:
                on_step(strategy, seed, index, p)

        curve: list[float] = []

        def record_epoch(epoch: int, trained: torch.nn.Module, curve: list[float] = curve) -> None:
            curve.append(evaluate(trained, x_test, y_test).accuracy)

        result = run_update(
            model, spec, mask, has_parent=megabatch.index > 1,
            train_x=x_all[train_ids], train_y=y_all[train_ids],
            megabatch_x=x_all[mb_ids], megabatch_y=y_all[mb_ids],
            config=update_config, seeds=UpdateSeeds.derive(seed, megabatch.index),
            val=(x_all[val_ids], y_all[val_ids]), progress=progress,
            on_epoch_end=record_epoch if config.epoch_curve else None,
        )
        model, mask = result.model, result.next_mask
        test = evaluate(model, x_test, y_test)
        train_accuracy = evaluate(model, x_all[train_ids], y_all[train_ids]).accuracy
        val_accuracy = evaluate(model, x_all[val_ids], y_all[val_ids]).accuracy
        replay.observe(megabatch.train_ids, labels[megabatch.train_ids])
        record = MegaBatchRecord(
            index=megabatch.index,
            train_samples=len(train_ids),
            test_accuracy=test.accuracy,
            test_errors=test.errors,
            cer=cumulative_error_rate([r.test_errors for r in records] + [test.errors])[-1],
            train_accuracy=train_accuracy,
            val_accuracy=val_accuracy,
            generalization_gap=generalization_gap(train_accuracy, val_accuracy),
            ece=test.ece,
            nll=test.nll,
            prequential_accuracy=prequential,
            train_seconds=result.train.seconds,
            unlearn_seconds=result.unlearn_seconds,
            reset_seconds=result.reset_seconds,
            importance_seconds=result.importance_seconds,
            epoch_test_accuracy=curve,
        )
        records.append(record)
        if on_megabatch is not None:
            on_megabatch(strategy, seed, record)
    return records


def run_alma(
    dataset: Dataset,
    config: AlmaConfig,
    *,
    device: str = "auto",
    on_megabatch: MegaBatchCallback | None = None,
    on_step: StepCallback | None = None,
) -> dict:
    """Every strategy × seed; returns the ``results.json`` document (config, dataset, runs)."""
    target = _device(device)
    started = time.perf_counter()
    runs = []
    for strategy in config.strategies:
        for seed in config.seeds:
            records = run_stream(dataset, config, strategy, seed, device=target,
                                 on_megabatch=on_megabatch, on_step=on_step)
            runs.append({"strategy": strategy, "seed": seed, "megabatches": [asdict(r) for r in records]})
    return {
        "config": config.to_dict(),
        "dataset": {
            "name": dataset.name, "train_samples": len(dataset.train), "test_samples": len(dataset.test),
            "num_classes": dataset.num_classes, "image_size": dataset.image_size, "channels": dataset.channels,
        },
        "device": str(target),
        "torch": torch.__version__,
        "wall_seconds": time.perf_counter() - started,
        "runs": runs,
    }
