"""The configuration of one update, as plain data, and every option of training and forgetting
defined once: its default, its bounds, what it means, and the name it has in a model's recipe
(and so in the API), in ``lure bench alma`` and whether a model may change it after creation.

Everything else is derived from these declarations (``options_of``): the API's schema and its
PATCH set (``service/api/schemas.py``), the recipe's mapping from a stored config
(``lure_core/recipe.py``), ``lure bench alma``'s options (``lure_engine/bench_cli.py``); the
light client reaches every recipe option with ``--set NAME=VALUE``. Adding an option is this
module and the code that uses it. Torch-free, so ``lure`` starts in a fraction of a second.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

_SAME = "="  # the option's name elsewhere is its field's name


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: str | tuple[str, ...] | None = None,
    recipe: str | None = _SAME,
    bench: str | None = _SAME,
    mutable: bool = False,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """A dataclass field with what the rest of the project derives from it.

    ``recipe``/``bench``: the option's name in a recipe (the API) and in ``lure bench alma``
    (``"="``: the field's own; None: not offered there). ``choices``: the allowed values, or
    ``"module:NAME"`` of a registry that holds them (resolved only where it is checked, so this
    module stays torch-free). ``mutable``: a model may change it with ``PATCH``.
    """
    bounds = {k: v for k, v in {"ge": ge, "gt": gt, "le": le, "lt": lt}.items() if v is not None}
    metadata = {
        "help": help,
        "bounds": bounds,
        "choices": choices,
        "recipe": recipe,
        "bench": bench,
        "mutable": mutable,
    }
    if default_factory is not dataclasses.MISSING:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Option:
    """One option as the rest of the project sees it."""

    name: str  # the field's name
    owner: str  # "train" (TrainConfig) or "update" (UpdateConfig)
    default: Any
    type: Any  # the annotation, as written
    help: str
    bounds: dict[str, float]
    choices: str | tuple[str, ...] | None
    recipe: str | None
    bench: str | None
    mutable: bool

    def choice_values(self) -> tuple[str, ...] | None:
        """The allowed values (a registry is imported here: only where they are checked)."""
        if self.choices is None or isinstance(self.choices, tuple):
            return self.choices
        import importlib

        module, name = self.choices.split(":")
        return tuple(getattr(importlib.import_module(module), name))


def options_of(cls: type) -> list[Option]:
    """Every declared option of a config dataclass (fields made with :func:`option`); none for a
    class that declares none (a rule without options)."""
    if not dataclasses.is_dataclass(cls):
        return []
    owner = "train" if cls is TrainConfig else "update"
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        meta = f.metadata
        out.append(
            Option(
                f.name,
                owner,
                default,
                f.type,
                meta["help"],
                dict(meta["bounds"]),
                meta["choices"],
                f.name if meta["recipe"] == _SAME else meta["recipe"],
                f.name if meta["bench"] == _SAME else meta["bench"],
                meta["mutable"],
            )
        )
    return out


def describe_bounds(bounds: dict[str, float]) -> str:
    """``must lie in [1, 1000]``, ``must lie strictly between 0 and 1``, ``must be >= 0``..."""
    low = next(((k, bounds[k]) for k in ("ge", "gt") if k in bounds), None)
    high = next(((k, bounds[k]) for k in ("le", "lt") if k in bounds), None)
    if low and high:
        if low[0] == "gt" and high[0] == "lt":
            return f"must lie strictly between {low[1]:g} and {high[1]:g}"
        left, right = "[" if low[0] == "ge" else "(", "]" if high[0] == "le" else ")"
        return f"must lie in {left}{low[1]:g}, {high[1]:g}{right}"
    if low:
        return f"must be {'>=' if low[0] == 'ge' else '>'} {low[1]:g}"
    if high:
        return f"must be {'<=' if high[0] == 'le' else '<'} {high[1]:g}"
    return ""


def out_of_bounds(value: Any, bounds: dict[str, float]) -> bool:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return (
        ("ge" in bounds and value < bounds["ge"])
        or ("gt" in bounds and value <= bounds["gt"])
        or ("le" in bounds and value > bounds["le"])
        or ("lt" in bounds and value >= bounds["lt"])
    )


def check_options(config: Any) -> None:
    """ValueError naming the first option outside its bounds or choices (the one check of them:
    the API states the same bounds in its schema, derived from here)."""
    for opt in options_of(type(config)):
        value = getattr(config, opt.name)
        words = opt.name.replace("_", " ")
        label = words if words == opt.name else f"{words} ({opt.name})"  # read, and searched for
        if out_of_bounds(value, opt.bounds):
            raise ValueError(f"{label} {describe_bounds(opt.bounds)}, got {value}")
        if isinstance(opt.choices, tuple) and value not in opt.choices:
            raise ValueError(f"unknown {label} {value!r}; choose {', '.join(opt.choices)}")


@dataclass(frozen=True)
class TrainConfig:
    """The paper's recipe by default: SGD 0.1, momentum 0.9, wd 1e-4, ×0.1 at 40 % and 80 %."""

    epochs: int = option(50, ge=1, le=1000, help="epochs each update trains (the cap with a "
                         "training-accuracy target)")  # fmt: skip
    batch_size: int = option(64, ge=2, le=4096, help="mini-batch size (BatchNorm needs two)")
    lr: float = option(0.1, gt=0, le=10, help="SGD learning rate")
    momentum: float = option(0.9, ge=0, lt=1, bench=None, help="SGD momentum")
    weight_decay: float = option(1e-4, ge=0, le=1, help="SGD weight decay")
    milestones: tuple[float, ...] = option(
        (0.4, 0.8),
        recipe="lr_milestones",
        bench=None,
        help="fractions of each update's epochs at which the learning rate is multiplied by "
        "lr_gamma (the paper's: 40 % and 80 %); [] keeps it constant",
    )
    gamma: float = option(
        0.1, gt=0, le=1, recipe="lr_gamma", bench="lr_decay",
        help="learning-rate factor at each milestone (1.0: constant)",
    )  # fmt: skip
    hflip: bool = option(
        True, bench=None, help="flip augmentation; turn off where a mirror changes the label"
    )
    crop_padding: int = option(4, ge=0, recipe=None, bench=None, help="random-crop padding")
    keep_best_on_validation: bool = option(
        False, recipe=None, bench="keep_best", help="keep the best epoch on the validation splits"
    )
    # start from the previous update's SGD momentum buffers (the paper's code keeps one optimiser
    # for the whole stream) instead of zero momentum
    carry_momentum: bool = option(
        False,
        help="start each update from its parent's SGD momentum buffers (stored with each "
        "version, as the paper's code keeps one optimiser for the whole stream) instead of zero",
    )
    amp: bool = option(True, recipe=None, bench=None, help="bf16 autocast, used on CUDA only")
    # NHWC layout, CUDA only: on the CPU it was 18 % faster, but torch 2.14.1's channels_last CPU
    # backward kernels corrupt the heap on some CPUs (lure_engine.data.for_backward)
    channels_last: bool = option(True, recipe=None, bench=None, help="NHWC layout on CUDA")
    # Train to convergence (Ash & Adams 2020, DASH): stop after the first epoch whose running
    # training accuracy (its mini-batches, as trained on) reaches this; ``epochs`` is then the cap
    # and the learning-rate milestones count from it. None: train exactly ``epochs``.
    until_train_accuracy: float | None = option(
        None, gt=0, le=1, recipe=None,
        help="train each update until an epoch's running training accuracy reaches this "
        "(e.g. 0.99); epochs is then the cap",
    )  # fmt: skip
    # After training, recompute every BatchNorm layer's running statistics with the final weights
    # on the (un-augmented) training rows (``torch.optim.swa_utils.update_bn``). The running
    # averages of a short update lag weights that moved: after importing a ShuffleNetV2 at 32 px
    # (1×1 maps in its last stages) the first update lost 3 points and doubled its ECE without
    # this; on the CIFAR ResNets it changes test accuracy by less than a point
    # (docs/BENCHMARKS.md, "Imported models and BatchNorm statistics").
    # Label smoothing (Szegedy et al. 2016): each target puts this mass on the other classes
    # evenly, which tempers over-confident logits; 0: plain cross-entropy, bit for bit
    label_smoothing: float = option(
        0.0,
        ge=0,
        lt=1,
        mutable=True,
        help="share of each training target spread evenly over the classes (0: off)",
    )
    recalibrate_norm: bool = option(
        True,
        mutable=True,
        help="after each update's training, recompute BatchNorm running statistics with the "
        "final weights on the training rows (an imported model's first update keeps its "
        "calibration)",
    )

    def __post_init__(self) -> None:
        check_options(self)


# When the keep-mask is scored. ``after_training`` (default): on a random sample of the mega-batch
# just trained on, kept for the next update. ``before_reset`` (the paper's public code): on the
# parent at the start of the update, on the first rows of the training set (replay first, so with
# full replay that is old data), just before the reset it drives.
IMPORTANCE_TIMINGS = ("after_training", "before_reset")


@dataclass(frozen=True)
class UpdateConfig:
    """One update: the forgetting strategy, how importance is scored, and its training."""

    strategy: str = "lure"
    importance: str = option(
        "snip", choices="lure_engine.importance:ESTIMATORS", help="snip | fisher | magnitude | "
        "random: how each weight's importance is scored",
    )  # fmt: skip
    keep_fraction: float = option(
        0.8, gt=0, lt=1, bench="keep", help="fraction of scored weights LURE keeps (0 < k < 1)"
    )
    scope: str = option(
        "conv_linear_weights",
        choices="lure_engine.importance.scope:SCOPES",
        help="which parameters importance scores and forgetting resets",
    )
    reset_source: str = option(
        "fresh_model",
        choices="lure_engine.forgetting:RESET_SOURCES",
        help="where reset weights come from: a freshly initialised model, or Kaiming",
    )
    importance_sample_fraction: float = option(
        0.2, gt=0, le=1, bench=None, help="share of the rows importance is scored on"
    )
    importance_sample_size: int = option(
        0, ge=0, le=1_000_000,
        help="exactly this many rows instead of the fraction (0: use the fraction)",
    )  # fmt: skip
    importance_timing: str = option(
        "after_training",
        choices=IMPORTANCE_TIMINGS,
        help="when the keep-mask is scored: after training, on a sample of the mega-batch "
        "(kept for the next update), or before the reset, on the parent (the paper's code)",
    )
    # score the importance mask after training even when this strategy does not use it (a sibling
    # candidate that unlearns may start from this version next time)
    always_estimate_mask: bool = False
    strategy_options: dict = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        # the strategy's name and options are checked where they come in (the API's schema,
        # ``lure bench alma``) and by the rule when it is built: checking them here made this
        # torch-free module import every rule (configs → forgetting → l2_init → trainer → configs)
        check_options(self)
