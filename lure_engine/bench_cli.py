"""``lure bench alma``: run strategies through an ALMA stream and write results, table and plot.
Engine tooling, beside the simulator it drives; the server's ``lure`` mounts it as ``bench``.

Every argument is checked (and the dataset loaded) before any training starts, so a typo costs a
second, not an hour.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field, fields, make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

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

from lure_engine.configs import (
    Option,
    TrainConfig,
    UpdateConfig,
    describe_bounds,
    options_of,
    out_of_bounds,
)

if TYPE_CHECKING:  # the engine (torch, torchmetrics: ~5 s) loads only when a benchmark runs
    from lure_engine.alma import AlmaConfig
    from lure_engine.data import Dataset

app = typer.Typer(help="Benchmarks of the LURE method.", no_args_is_help=True)
AUGMENTS = ("auto", "flip+crop", "crop", "none")
# the engine's options this command offers, by their bench names (lure_engine/configs.py)
ENGINE_OPTIONS: dict[str, Option] = {
    o.bench: o for o in (*options_of(TrainConfig), *options_of(UpdateConfig)) if o.bench
}
_TYPES: dict[str, Any] = {"int": int, "float": float, "bool": bool, "str": str}


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


# The benchmark's own arguments, with their defaults (``epochs``, 20, overrides the engine's 50);
# every other argument is one of the engine's options, with the engine's default.
OWN_OPTIONS: tuple[tuple[str, Any, Any], ...] = (
    ("dataset", str, "digits"),
    ("model", str, "mlp"),
    ("width", float, 1.0),
    ("strategies", str, "warm,lure,shrink_perturb,llf,cold"),
    ("replay", str, "full"),
    ("megabatches", int, 8),
    ("epochs", int, 20),
    ("seeds", str, "0"),
    ("label_noise", float, 0.0),
    ("augment", str, "auto"),
    ("train_samples", int, 0),  # > 0: a class-balanced subset of this many training images
)

_OWN = {name for name, *_ in OWN_OPTIONS}


def _type(option: Option) -> Any:
    """The option's Python type (an engine annotation is a string: postponed evaluation)."""
    text = str(option.type)
    base = _TYPES[text.removesuffix(" | None")]
    return Optional[base] if text.endswith("| None") else base  # noqa: UP045 - typer reads it


BenchOptions = make_dataclass(
    "BenchOptions",
    [(name, kind, field(default=default)) for name, kind, default in OWN_OPTIONS]
    + [
        (name, _type(o), field(default=o.default))
        for name, o in ENGINE_OPTIONS.items()
        if name not in _OWN
    ],
    frozen=True,
)
BenchOptions.__doc__ = (
    "The arguments of ``lure bench alma`` as given, before any check: the benchmark's own and "
    "every engine option it offers (``ENGINE_OPTIONS``), with the engine's defaults."
)
_DEFAULT = BenchOptions()


def _check_names(options) -> list[str]:
    """The names that must come from a registry; returns the strategies."""
    from lure_engine.forgetting import STRATEGIES
    from lure_engine.models import available_models
    from lure_engine.replay import parse_replay

    strategies = _split_list(options.strategies, "--strategies")
    _check_choice(strategies, list(STRATEGIES), "strategy")
    _check_choice([options.model], available_models(), "model")
    for name, option in ENGINE_OPTIONS.items():
        values = option.choice_values()
        if values:
            _check_choice([getattr(options, name)], values, name.replace("_", " "))
    _check_choice([options.augment], list(AUGMENTS), "augmentation")
    parse_replay(options.replay)
    return strategies


def _check_numbers(options) -> tuple[int, ...]:
    """Ranges of the numeric options (the engine's from their declarations); returns the
    seeds."""
    for name, option in ENGINE_OPTIONS.items():
        value = getattr(options, name)
        if out_of_bounds(value, option.bounds):
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag} {describe_bounds(option.bounds)}, got {value}")
    if not 0.0 <= options.label_noise < 1.0:
        raise ValueError(f"--label-noise must lie in [0, 1), got {options.label_noise}")
    if min(options.megabatches, options.epochs) < 1:
        raise ValueError("--megabatches and --epochs must be at least 1")
    if options.width <= 0:
        raise ValueError(f"--width must be positive, got {options.width}")
    if options.train_samples < 0:
        raise ValueError(f"--train-samples must be >= 0 (0: all), got {options.train_samples}")
    try:
        return tuple(int(s) for s in _split_list(options.seeds, "--seeds"))
    except ValueError as error:
        raise ValueError(
            f"--seeds must be comma-separated integers, got {options.seeds!r}"
        ) from error


def _engine_values(options, owner: str) -> dict:
    """The engine options given for TrainConfig (``owner="train"``) or UpdateConfig."""
    return {
        o.name: getattr(options, name) for name, o in ENGINE_OPTIONS.items() if o.owner == owner
    }


def build_config(options) -> BenchArgs:
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
    train = TrainConfig(**_engine_values(options, "train"), hflip=hflip, crop_padding=padding)
    update = UpdateConfig(**_engine_values(options, "update"), train=train)
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


_OWN_HELP = {
    "dataset": "digits | npz:PATH | cifar10:DIR",
    "model": "Architecture, e.g. resnet18 or small_cnn (a wrong name lists them).",
    "width": "Width multiplier (e.g. 0.25 for a narrow ResNet18 on CPU).",
    "strategies": "Comma-separated: warm, lure, shrink_perturb, llf, cold, dash, l2_init, fire.",
    "replay": "full | none | buffer:K[:reservoir|class_balanced]",
    "megabatches": "Number of mega-batches in the stream.",
    "epochs": "Epochs per mega-batch.",
    "seeds": "Comma-separated seeds.",
    "label_noise": "Symmetric label-noise rate on the training stream.",
    "augment": "auto | flip+crop | crop | none (auto: no flips for digits)",
    "train_samples": "Use a class-balanced subset of this many training images (0: all).",
}


def _alma(**given: Any) -> None:
    """Run forgetting strategies through an ALMA stream; write results.json, a table and a plot."""
    from lure_engine.alma import markdown_table

    device, out = given.pop("device"), given.pop("out")
    try:
        args = build_config(BenchOptions(**given))
    except ValueError as error:  # one line, as every lure command reports bad input
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    results = _run_with_progress(args, device)
    paths = write_outputs(results, out)
    typer.echo(markdown_table(results))
    typer.echo(f"wall time {results['wall_seconds']:.1f} s on {results['device']}")
    for name, path in paths.items():
        typer.echo(f"{name}: {path}")


def _parameter(name: str, kind: Any, default: Any, help: str) -> inspect.Parameter:
    flag = name.replace("_", "-")
    names = f"--{flag}/--no-{flag}" if kind is bool else f"--{flag}"  # a switch, as typer's own
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=typer.Option(default, names, help=help),
        annotation=kind,
    )


def _signature() -> inspect.Signature:
    """Every argument of ``alma``: the benchmark's own, then the engine's options."""
    own = [_parameter(n, k, d, _OWN_HELP[n]) for n, k, d in OWN_OPTIONS]
    engine = [
        _parameter(f.name, f.type, f.default, ENGINE_OPTIONS[f.name].help)
        for f in fields(BenchOptions)
        if f.name not in _OWN
    ]
    tail = [
        _parameter("device", str, "auto", "auto | cpu | cuda"),
        _parameter("out", Path, Path("runs/alma"), "Folder for results.json, results.md, plot."),
    ]
    return inspect.Signature([*own, *engine, *tail])


_alma.__signature__ = _signature()  # type: ignore[attr-defined]
alma = app.command("alma")(_alma)
