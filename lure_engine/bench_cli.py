"""``lure bench alma``: run strategies through an ALMA stream and write results, table and plot.
Engine tooling, beside the simulator it drives; the server's ``lure`` mounts it as ``bench``.

Every argument is checked (and the dataset loaded) before any training starts, so a typo costs a
second, not an hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from lure_engine.configs import TrainConfig, UpdateConfig

if TYPE_CHECKING:  # the engine (torch, torchmetrics: ~5 s) loads only when a benchmark runs
    from lure_engine.alma import AlmaConfig
    from lure_engine.data import Dataset

app = typer.Typer(help="Benchmarks of the LURE method.", no_args_is_help=True)
# the engine's defaults (torch-free to read: lure_engine/configs.py), not a copy of them
_TRAIN = TrainConfig()
# read from the fields: building an UpdateConfig checks its strategy, which loads torch
_UPDATE: dict[str, Any] = {f.name: f.default for f in fields(UpdateConfig)}
AUGMENTS = ("auto", "flip+crop", "crop", "none")


def _split_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{what} must name at least one value")
    return items


def _check_choice(values: list[str], known, what: str) -> None:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(
            f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}"
        )


@dataclass
class BenchArgs:
    dataset: Dataset
    config: AlmaConfig


@dataclass(frozen=True)
class BenchOptions:
    """The arguments of ``lure bench alma`` as given, before any check. Training and forgetting
    defaults are the engine's; ``epochs`` (20) and the stream's are the benchmark's own."""

    dataset: str = "digits"
    model: str = "mlp"
    width: float = 1.0
    strategies: str = "warm,lure,shrink_perturb,llf,cold"
    replay: str = "full"
    megabatches: int = 8
    epochs: int = 20
    seeds: str = "0"
    importance: str = _UPDATE["importance"]
    keep: float = _UPDATE["keep_fraction"]
    label_noise: float = 0.0
    batch_size: int = _TRAIN.batch_size
    lr: float = _TRAIN.lr
    augment: str = "auto"
    scope: str = _UPDATE["scope"]
    reset_source: str = _UPDATE["reset_source"]
    keep_best: bool = _TRAIN.keep_best_on_validation
    importance_timing: str = _UPDATE["importance_timing"]
    importance_sample_size: int = _UPDATE["importance_sample_size"]
    carry_momentum: bool = _TRAIN.carry_momentum
    lr_decay: float = _TRAIN.gamma
    weight_decay: float = _TRAIN.weight_decay
    until_train_accuracy: float = 0.0  # > 0: train each update until this (epochs: the cap)
    train_samples: int = 0  # > 0: a class-balanced subset of this many training images
    recalibrate_norm: bool = _TRAIN.recalibrate_norm


_DEFAULT = BenchOptions()


def _check_names(options: BenchOptions) -> list[str]:
    """The names that must come from a registry; returns the strategies."""
    from lure_engine.configs import IMPORTANCE_TIMINGS
    from lure_engine.forgetting import RESET_SOURCES, STRATEGIES
    from lure_engine.importance import ESTIMATORS, SCOPES
    from lure_engine.models import available_models
    from lure_engine.replay import parse_replay

    strategies = _split_list(options.strategies, "--strategies")
    _check_choice(strategies, list(STRATEGIES), "strategy")
    _check_choice([options.model], available_models(), "model")
    _check_choice([options.importance], list(ESTIMATORS), "importance estimator")
    _check_choice([options.scope], list(SCOPES), "parameter scope")
    _check_choice([options.reset_source], list(RESET_SOURCES), "reset source")
    _check_choice([options.importance_timing], list(IMPORTANCE_TIMINGS), "importance timing")
    _check_choice([options.augment], list(AUGMENTS), "augmentation")
    parse_replay(options.replay)
    return strategies


def _check_numbers(options: BenchOptions) -> tuple[int, ...]:
    """Ranges of the numeric options; returns the seeds."""
    if not 0.0 < options.keep < 1.0:
        raise ValueError(f"--keep must lie strictly between 0 and 1, got {options.keep}")
    if not 0.0 <= options.label_noise < 1.0:
        raise ValueError(f"--label-noise must lie in [0, 1), got {options.label_noise}")
    if min(options.megabatches, options.epochs, options.batch_size) < 1:
        raise ValueError("--megabatches, --epochs and --batch-size must be at least 1")
    if options.width <= 0:
        raise ValueError(f"--width must be positive, got {options.width}")
    if options.importance_sample_size < 0:
        raise ValueError("--importance-sample-size must be >= 0 (0: use 20 % of the mega-batch)")
    if not 0.0 < options.lr_decay <= 1.0:
        raise ValueError(f"--lr-decay must lie in (0, 1], got {options.lr_decay}")
    if not 0.0 <= options.until_train_accuracy <= 1.0:
        raise ValueError(
            "--until-train-accuracy must lie in [0, 1] (0: off), "
            f"got {options.until_train_accuracy}"
        )
    if options.train_samples < 0:
        raise ValueError(f"--train-samples must be >= 0 (0: all), got {options.train_samples}")
    if options.weight_decay < 0:
        raise ValueError(f"--weight-decay must be >= 0, got {options.weight_decay}")
    try:
        return tuple(int(s) for s in _split_list(options.seeds, "--seeds"))
    except ValueError as error:
        raise ValueError(
            f"--seeds must be comma-separated integers, got {options.seeds!r}"
        ) from error


def build_config(options: BenchOptions) -> BenchArgs:
    """Validate every option and load the data; raises ValueError naming the first problem."""
    from lure_engine.alma import AlmaConfig
    from lure_engine.augment import default_crop_padding
    from lure_engine.data import balanced_train_subset, load_dataset
    from lure_engine.models import ModelSpec

    strategies, seeds = _check_names(options), _check_numbers(options)
    data = load_dataset(options.dataset)
    if options.train_samples:
        data = balanced_train_subset(data, options.train_samples)
    ModelSpec(options.model, data.num_classes, data.channels, data.image_size, options.width)
    if len(data.train) // options.megabatches < 10:
        raise ValueError(
            f"{len(data.train)} training samples are too few for {options.megabatches} mega-batches"
        )
    hflip = data.hflip if options.augment == "auto" else options.augment == "flip+crop"
    padding = 0 if options.augment == "none" else default_crop_padding(data.image_size)
    train = TrainConfig(
        epochs=options.epochs,
        batch_size=options.batch_size,
        lr=options.lr,
        hflip=hflip,
        crop_padding=padding,
        keep_best_on_validation=options.keep_best,
        carry_momentum=options.carry_momentum,
        gamma=options.lr_decay,
        weight_decay=options.weight_decay,
        until_train_accuracy=options.until_train_accuracy or None,
        recalibrate_norm=options.recalibrate_norm,
    )
    update = UpdateConfig(
        importance=options.importance,
        keep_fraction=options.keep,
        scope=options.scope,
        reset_source=options.reset_source,
        importance_timing=options.importance_timing,
        importance_sample_size=options.importance_sample_size,
        train=train,
    )
    config = AlmaConfig(
        model=options.model,
        width=options.width,
        strategies=tuple(strategies),
        replay=options.replay,
        megabatches=options.megabatches,
        seeds=seeds,
        label_noise=options.label_noise,
        update=update,
    )
    return BenchArgs(data, config)


def write_outputs(results: dict, out: Path) -> dict[str, Path]:
    from lure_engine.alma import markdown_table, plot

    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "table": out / "results.md", "plot": out / "alma.png"}
    paths["results"].write_text(json.dumps(results, indent=2))
    paths["table"].write_text(markdown_table(results))
    plot(results, paths["plot"])
    return paths


def _run_with_progress(args: BenchArgs, device: str) -> dict:
    """Run the benchmark behind a progress bar counting epochs."""
    from lure_engine.alma import run_alma

    config = args.config
    total = (
        len(config.strategies) * len(config.seeds) * config.megabatches * config.update.train.epochs
    )
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task("starting", total=total)

        def on_step(strategy: str, seed: int, index: int, p) -> None:
            bar.update(
                task,
                description=f"{strategy} seed {seed} mb {index}/{config.megabatches} "
                f"epoch {p.epoch}/{p.epochs} loss {p.loss:.3f}",
            )
            if p.step == p.steps:
                bar.advance(task)

        return run_alma(args.dataset, config, device=device, on_step=on_step)


_MODEL = typer.Option(
    _DEFAULT.model, help="Architecture, e.g. resnet18 or small_cnn (a wrong name lists them)."
)

_WIDTH = typer.Option(
    _DEFAULT.width, help="Width multiplier (e.g. 0.25 for a narrow ResNet18 on CPU)."
)

_STRATEGIES = typer.Option(
    _DEFAULT.strategies,
    help="Comma-separated: warm, lure, shrink_perturb, llf, cold, dash, l2_init, fire.",
)

_LABEL_NOISE = typer.Option(
    _DEFAULT.label_noise, help="Symmetric label-noise rate on the training stream."
)

_AUGMENT = typer.Option(
    _DEFAULT.augment, help="auto | flip+crop | crop | none (auto: no flips for digits)"
)

_SCOPE = typer.Option(
    _DEFAULT.scope,
    help="Which parameters are scored and may be reset: conv_linear_weights | weights | all "
    "| all_scored_conv_reset (the paper's code).",
)

_IMPORTANCE_TIMING = typer.Option(
    _DEFAULT.importance_timing,
    help="after_training | before_reset (score the parent on the head of the training set "
    "just before resetting, as the paper's code does).",
)

_IMPORTANCE_SAMPLE_SIZE = typer.Option(
    _DEFAULT.importance_sample_size,
    help="Rows to score importance on (0: 20 % of the mega-batch; the paper's code: 100).",
)

_CARRY_MOMENTUM = typer.Option(
    _DEFAULT.carry_momentum,
    help="Carry SGD momentum across mega-batches (one optimiser for the stream).",
)

_LR_DECAY = typer.Option(
    _DEFAULT.lr_decay, help="Learning-rate factor at 40 % and 80 % of the epochs (1.0: constant)."
)

_UNTIL_TRAIN_ACCURACY = typer.Option(
    _DEFAULT.until_train_accuracy,
    help="Train each update until an epoch's running training accuracy reaches this "
    "(e.g. 0.99); --epochs is then the cap. 0: train exactly --epochs.",
)

_TRAIN_SAMPLES = typer.Option(
    _DEFAULT.train_samples,
    help="Use a class-balanced subset of this many training images (0: all).",
)

_RECALIBRATE_NORM = typer.Option(
    _DEFAULT.recalibrate_norm,
    help="Recompute BatchNorm statistics with the final weights after each update.",
)

_OUT = typer.Option(Path("runs/alma"), help="Folder for results.json, results.md and alma.png.")


@app.command("alma")
def alma(
    dataset: str = typer.Option(_DEFAULT.dataset, help="digits | npz:PATH | cifar10:DIR"),
    model: str = _MODEL,
    width: float = _WIDTH,
    strategies: str = _STRATEGIES,
    replay: str = typer.Option(
        _DEFAULT.replay, help="full | none | buffer:K[:reservoir|class_balanced]"
    ),
    megabatches: int = typer.Option(
        _DEFAULT.megabatches, help="Number of mega-batches in the stream."
    ),
    epochs: int = typer.Option(_DEFAULT.epochs, help="Epochs per mega-batch."),
    seeds: str = typer.Option(_DEFAULT.seeds, help="Comma-separated seeds."),
    importance: str = typer.Option(_DEFAULT.importance, help="snip | fisher | magnitude | random"),
    keep: float = typer.Option(
        _DEFAULT.keep, help="Fraction of scored weights LURE keeps (0 < k < 1)."
    ),
    label_noise: float = _LABEL_NOISE,
    batch_size: int = typer.Option(_DEFAULT.batch_size),
    lr: float = typer.Option(_DEFAULT.lr),
    augment: str = _AUGMENT,
    scope: str = _SCOPE,
    reset_source: str = typer.Option(_DEFAULT.reset_source, help="fresh_model | kaiming_uniform"),
    keep_best: bool = typer.Option(
        _DEFAULT.keep_best, help="Keep the best epoch on the validation splits."
    ),
    importance_timing: str = _IMPORTANCE_TIMING,
    importance_sample_size: int = _IMPORTANCE_SAMPLE_SIZE,
    carry_momentum: bool = _CARRY_MOMENTUM,
    lr_decay: float = _LR_DECAY,
    weight_decay: float = typer.Option(_DEFAULT.weight_decay, help="SGD weight decay."),
    until_train_accuracy: float = _UNTIL_TRAIN_ACCURACY,
    train_samples: int = _TRAIN_SAMPLES,
    recalibrate_norm: bool = _RECALIBRATE_NORM,
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    out: Path = _OUT,
) -> None:
    """Run forgetting strategies through an ALMA stream; write results.json, a table and a plot."""
    from lure_engine.alma import markdown_table

    given = locals()
    try:
        args = build_config(BenchOptions(**{f.name: given[f.name] for f in fields(BenchOptions)}))
    except ValueError as error:  # one line, as every lure command reports bad input
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    results = _run_with_progress(args, device)
    paths = write_outputs(results, out)
    typer.echo(markdown_table(results))
    typer.echo(f"wall time {results['wall_seconds']:.1f} s on {results['device']}")
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
