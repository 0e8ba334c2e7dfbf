"""A model's update recipe, parsed once from its stored config into a typed, frozen object.

The API validates the config (``service/api/schemas.py``) and stores it as JSON; everything that
trains, splits or rebuilds a model reads it through :class:`Recipe`, never by string key.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING

from lure_engine.seeding import derive_seed
from lure_engine.splits import megabatch_split_seed

if TYPE_CHECKING:  # the engine's torch modules load only where a model is built or trained
    from lure_engine.data_gate import DataGatePolicy
    from lure_engine.gate import PromotionPolicy
    from lure_engine.models import ModelSpec
    from lure_engine.preprocess import Preprocessing
    from lure_engine.update import UpdateConfig


AUTO = "auto"  # train several strategies per mega-batch, retire the ones that keep losing
# every warm-family rule races (lure_update/selection.py): which one wins flips with the
# training budget (DASH 7 points behind warm at 6 epochs an update, 6-9 ahead at long budgets;
# docs/BENCHMARKS.md), so the race finds it; warm first: the first update and ties go to it
AUTO_DEFAULT = ("warm", "dash", "lure", "shrink_perturb", "fire")
AUTO_DEFAULT_TRAINED_UNTIL = AUTO_DEFAULT
DEFAULT_RETIRE_AFTER = 3
RACES = ("halving", "evidence")  # auto's retirement: successive halving, or retire_after


@dataclass(frozen=True)
class Recipe:
    """A model's recipe as the server reads it, from the config stored with the model (the API's
    ``ModelCreate`` validated it and filled its defaults).

    Its sections: the model and its data (architecture to seed, preprocessing), the server's
    choices (strategy and selection: challengers, race, lineages, gates; retention; serving: the
    prediction log, shadows), and the engine's training and unlearning options, which are not
    listed here: ``update_config_for`` reads every option ``lure_engine/configs.py`` declares
    from the stored config under its recipe name (``options``), the engine's default where a
    config stored before the option has none.
    """

    architecture: str
    num_classes: int
    width: float
    image_size: int
    channels: int
    strategy: str
    replay: str  # full | buffer | none
    buffer_size: int | None
    megabatch_size: int
    seed: int
    # added with bring-your-own models; configs stored before them take these defaults
    resize: str = "squash"
    mean: tuple[float, ...] | None = None  # None: this project's fixed CIFAR statistics
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    later_blocks: tuple[str, ...] | None = None  # LLF's blocks when not the architecture's default
    # added with promotion gates; configs stored before them get the default gate, no challengers
    promotion: dict | None = None  # PromotionPolicy's fields; None: the default policy
    challengers: tuple[str, ...] = ()  # strategies trained beside the primary on each mega-batch
    retire_after: int | None = None  # auto: stop training a strategy after K losses in a row
    keep_versions: int | None = None  # retention: newest N checkpoints plus live; None: all
    # train each update until {"train_accuracy": a, "max_epochs": n}; None: exactly ``epochs``
    train_until: dict | None = None
    # added with the data gate; None: its defaults (quarantine)
    data_gate: dict | None = None
    strategy_options: dict | None = None  # strategy → its rule's keyword options
    # each candidate strategy continues its own versions (lure_update/lineage_records.py); None: on
    lineages: bool | None = None
    # the level at which the live pointer moves to another lineage; None: the engine's default
    switch_significance: float | None = None
    # the prediction log's {sample_rate, keep_days, max_rows}; None: /predict logs nothing
    log_predictions: dict | None = None
    # versions that also answer logged requests, off the request path (service/serving/shadow.py)
    shadow: tuple[int, ...] = ()
    # auto's race: "halving" (None) keeps the better half after each mega-batch until one is
    # left; "evidence" retires a lineage behind the live one ``retire_after`` times in a row
    race: str | None = None
    # the stored config as it is: the engine's options are read from it (``update_config_for``)
    options: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: dict) -> Recipe:
        known = {f.name for f in fields(cls)} - {"options"}
        values = {key: value for key, value in config.items() if key in known}
        values["options"] = dict(config)
        for key in (
            "mean",
            "std",
            "class_names",
            "later_blocks",
            "challengers",
            "shadow",
        ):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @property
    def preprocessing(self) -> Preprocessing:
        from lure_engine.preprocess import Preprocessing, default_statistics

        mean, std = default_statistics("cifar", self.channels)
        return Preprocessing(
            self.image_size, self.channels, self.mean or mean, self.std or std, self.resize
        )

    def class_name(self, label: int) -> str | None:
        return self.class_names[label] if self.class_names else None

    @property
    def model_spec(self) -> ModelSpec:
        from lure_engine.models import ModelSpec

        return ModelSpec(
            self.architecture,
            self.num_classes,
            self.channels,
            self.image_size,
            self.width,
            later_blocks_override=self.later_blocks or (),
        )

    @property
    def policy(self) -> PromotionPolicy:
        from lure_engine.gate import PromotionPolicy

        return PromotionPolicy.from_dict(self.promotion)

    @property
    def data_policy(self) -> DataGatePolicy:
        from lure_engine.data_gate import DataGatePolicy

        return DataGatePolicy.from_dict(self.data_gate)

    @property
    def candidates(self) -> tuple[str, ...]:
        """Every strategy trained on each mega-batch, primary first (``auto``: every warm-family
        rule, warm first, unless challengers name others)."""
        if self.strategy == AUTO:
            default = AUTO_DEFAULT_TRAINED_UNTIL if self.train_until else AUTO_DEFAULT
            return self.challengers or default
        return (self.strategy, *(s for s in self.challengers if s != self.strategy))

    @property
    def own_lineages(self) -> bool:
        """Does each candidate start from its own lineage's head (not from whatever is live)?"""
        return len(self.candidates) > 1 and self.lineages is not False

    @property
    def lineage_significance(self) -> float:
        """The level at which a lineage is behind the live one for good, i.e. retired (the
        gate's, or 0.05)."""
        from lure_engine.lineage_evidence import DEFAULT_SIGNIFICANCE

        return self.policy.significance or DEFAULT_SIGNIFICANCE

    @property
    def lineage_switch_significance(self) -> float:
        """The level at which the live pointer moves to a lineage ahead on the newest evidence
        (looser than retirement's: a switch is undone by the next mega-batch's evidence)."""
        from lure_engine.lineage_evidence import DEFAULT_SWITCH_SIGNIFICANCE

        return self.switch_significance or DEFAULT_SWITCH_SIGNIFICANCE

    @property
    def races(self) -> bool:
        """Does ``auto`` race its lineages by successive halving (``lure_update.selection.cut``)?"""
        return self.strategy == AUTO and self.own_lineages and self.race != "evidence"

    @property
    def retire_losers_after(self) -> int | None:
        """Losses in a row after which ``auto`` stops training a strategy (never otherwise)."""
        if self.strategy != AUTO or self.races:
            return None
        return self.retire_after or DEFAULT_RETIRE_AFTER

    @property
    def update_config(self) -> UpdateConfig:
        return self.update_config_for(self.candidates[0])

    def update_config_for(self, strategy: str) -> UpdateConfig:
        """The update of one candidate: every engine option the recipe holds, the engine's
        default for the rest; with siblings every candidate also scores the importance mask, so a
        LURE sibling of a winning warm-start still finds one to unlearn with."""
        from lure_engine.augment import default_crop_padding
        from lure_engine.configs import TrainConfig, UpdateConfig, options_of

        until = self.train_until or {}
        train = TrainConfig(
            **self._engine_options(options_of(TrainConfig)),
            crop_padding=default_crop_padding(self.image_size),
        )
        if until:  # train to a target: the cap replaces the epochs
            train = replace(
                train, epochs=until["max_epochs"], until_train_accuracy=until["train_accuracy"]
            )
        return UpdateConfig(
            **self._engine_options(options_of(UpdateConfig)),
            strategy=strategy,
            strategy_options=(self.options.get("strategy_options") or {}).get(strategy) or {},
            always_estimate_mask=len(self.candidates) > 1,
            train=train,
        )

    def _engine_options(self, declared: list) -> dict:
        """Each declared option the stored config holds under its recipe name (a stored list is
        the tuple the engine keeps); absent or None: the engine's default."""
        chosen = {}
        for option in declared:
            value = self.options.get(option.recipe) if option.recipe else None
            if value is not None:
                chosen[option.name] = tuple(value) if isinstance(value, list) else value
        return chosen

    @property
    def replay_spec(self) -> str:
        """The engine's replay name: ``full``, ``none`` or ``buffer:K``."""
        return f"buffer:{self.buffer_size}" if self.replay == "buffer" else self.replay

    @property
    def init_seed(self) -> int:
        return derive_seed(self.seed, "init")

    @property
    def replay_seed(self) -> int:
        return derive_seed(self.seed, "replay")

    def split_seed(self, megabatch_index: int) -> int:
        return megabatch_split_seed(self.seed, megabatch_index)
