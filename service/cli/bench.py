"""``lure bench alma``: run strategies through an ALMA stream and write results, table and plot.

Every argument is checked (and the dataset loaded) before any training starts, so a typo costs a
second, not an hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from service.cli.errors import fail

if TYPE_CHECKING:  # the engine (torch, torchmetrics: ~5 s) loads only when a benchmark runs
    from lure_engine.alma import AlmaConfig
    from lure_engine.data import Dataset

app = typer.Typer(help="Benchmarks of the LURE method.", no_args_is_help=True)
AUGMENTS = ("auto", "flip+crop", "crop", "none")


def _split_list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{what} must name at least one value")
    return items


def _check_choice(values: list[str], known, what: str) -> None:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(map(repr, unknown))}; choose from {', '.join(known)}")


@dataclass
class BenchArgs:
    dataset: Dataset
    config: AlmaConfig


def build_config(
    *, dataset: str, model: str, width: float, strategies: str, replay: str, megabatches: int, epochs: int,
    seeds: str, importance: str, keep: float, label_noise: float, batch_size: int, lr: float,
    augment: str, scope: str, reset_source: str, keep_best: bool,
) -> BenchArgs:
    """Validate every argument and load the data; raises ValueError naming the first problem."""
    from lure_engine.alma import AlmaConfig
    from lure_engine.augment import default_crop_padding
    from lure_engine.data import load_dataset
    from lure_engine.forgetting import RESET_SOURCES, STRATEGIES
    from lure_engine.importance import ESTIMATORS, SCOPES
    from lure_engine.models import ModelSpec, available_models
    from lure_engine.replay import parse_replay
    from lure_engine.trainer import TrainConfig
    from lure_engine.update import UpdateConfig

    strategy_list = _split_list(strategies, "--strategies")
    _check_choice(strategy_list, list(STRATEGIES), "strategy")
    _check_choice([model], available_models(), "model")
    _check_choice([importance], list(ESTIMATORS), "importance estimator")
    _check_choice([scope], list(SCOPES), "parameter scope")
    _check_choice([reset_source], list(RESET_SOURCES), "reset source")
    _check_choice([augment], list(AUGMENTS), "augmentation")
    if not 0.0 < keep < 1.0:
        raise ValueError(f"--keep must lie strictly between 0 and 1, got {keep}")
    if not 0.0 <= label_noise < 1.0:
        raise ValueError(f"--label-noise must lie in [0, 1), got {label_noise}")
    if megabatches < 1 or epochs < 1 or batch_size < 1:
        raise ValueError("--megabatches, --epochs and --batch-size must be at least 1")
    if width <= 0:
        raise ValueError(f"--width must be positive, got {width}")
    try:
        seed_list = tuple(int(s) for s in _split_list(seeds, "--seeds"))
    except ValueError as error:
        raise ValueError(f"--seeds must be comma-separated integers, got {seeds!r}") from error
    parse_replay(replay)
    data = load_dataset(dataset)
    ModelSpec(model, data.num_classes, data.channels, data.image_size, width)
    if len(data.train) // megabatches < 10:
        raise ValueError(f"{len(data.train)} training samples are too few for {megabatches} mega-batches")
    hflip = data.hflip if augment == "auto" else augment == "flip+crop"
    padding = 0 if augment == "none" else default_crop_padding(data.image_size)
    train = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, hflip=hflip, crop_padding=padding,
                        keep_best_on_validation=keep_best)
    update = UpdateConfig(importance=importance, keep_fraction=keep, scope=scope, reset_source=reset_source,
                          train=train)
    config = AlmaConfig(model=model, width=width, strategies=tuple(strategy_list), replay=replay,
                        megabatches=megabatches, seeds=seed_list, label_noise=label_noise, update=update)
    return BenchArgs(data, config)


def write_outputs(results: dict, out: Path) -> dict[str, Path]:
    from lure_engine.alma import markdown_table, plot

    out.mkdir(parents=True, exist_ok=True)
    paths = {"results": out / "results.json", "table": out / "results.md", "plot": out / "alma.png"}
    paths["results"].write_text(json.dumps(results, indent=2))
    paths["table"].write_text(markdown_table(results))
    plot(results, paths["plot"])
    return paths


@app.command("alma")
def alma(
    dataset: str = typer.Option("digits", help="digits | npz:PATH | cifar10:DIR"),
    model: str = typer.Option("mlp", help="Architecture, e.g. resnet18 or small_cnn (a wrong name lists them all)."),
    width: float = typer.Option(1.0, help="Width multiplier (e.g. 0.25 for a narrow ResNet18 on CPU)."),
    strategies: str = typer.Option("warm,lure,shrink_perturb,llf,cold", help="Comma-separated strategies."),
    replay: str = typer.Option("full", help="full | none | buffer:K[:reservoir|class_balanced]"),
    megabatches: int = typer.Option(8, help="Number of mega-batches in the stream."),
    epochs: int = typer.Option(20, help="Epochs per mega-batch."),
    seeds: str = typer.Option("0", help="Comma-separated seeds."),
    importance: str = typer.Option("snip", help="snip | fisher | magnitude | random"),
    keep: float = typer.Option(0.8, help="Fraction of scored weights LURE keeps (0 < k < 1)."),
    label_noise: float = typer.Option(0.0, help="Symmetric label-noise rate on the training stream."),
    batch_size: int = typer.Option(64),
    lr: float = typer.Option(0.1),
    augment: str = typer.Option("auto", help="auto | flip+crop | crop | none (auto: no flips for digits)"),
    scope: str = typer.Option("conv_linear_weights", help="Which parameters are scored and may be reset."),
    reset_source: str = typer.Option("fresh_model", help="fresh_model | kaiming_uniform"),
    keep_best: bool = typer.Option(False, help="Keep the best epoch on the validation splits."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    out: Path = typer.Option(Path("runs/alma"), help="Folder for results.json, results.md and alma.png."),
) -> None:
    """Run forgetting strategies through an ALMA stream; write results.json, a table and a plot."""
    from lure_engine.alma import markdown_table, run_alma

    try:
        args = build_config(
            dataset=dataset, model=model, width=width, strategies=strategies, replay=replay,
            megabatches=megabatches, epochs=epochs, seeds=seeds, importance=importance, keep=keep,
            label_noise=label_noise, batch_size=batch_size, lr=lr, augment=augment, scope=scope,
            reset_source=reset_source, keep_best=keep_best,
        )
    except ValueError as error:
        raise fail(str(error)) from None
    config = args.config
    total = len(config.strategies) * len(config.seeds) * config.megabatches * epochs
    console = Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
               TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("starting", total=total)

        def on_step(strategy: str, seed: int, index: int, p) -> None:
            bar.update(task, description=f"{strategy} seed {seed} mb {index}/{config.megabatches} "
                                         f"epoch {p.epoch}/{p.epochs} loss {p.loss:.3f}")
            if p.step == p.steps:
                bar.advance(task)

        results = run_alma(args.dataset, config, device=device, on_step=on_step)
    paths = write_outputs(results, out)
    typer.echo(markdown_table(results))
    typer.echo(f"wall time {results['wall_seconds']:.1f} s on {results['device']}")
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")
