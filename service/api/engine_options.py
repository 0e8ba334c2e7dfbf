"""The API's fields for the engine's training and unlearning options, derived from their one
declaration (``lure_engine/configs.py``): the name each has in a recipe, its type, default,
bounds, allowed values and meaning. ``ModelCreate`` takes every recipe option, ``ModelPatch`` the
mutable ones, so a new option reaches the API (and its PATCH, when declared mutable) unwritten.
Each forgetting rule's own options (``strategy_options``) are checked by their declared types and
bounds the same way, not by building the rule.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from lure_engine.configs import Option, TrainConfig, UpdateConfig, options_of

# the annotations as the engine writes them, as the API takes them (a list is JSON's tuple)
_TYPES: dict[str, Any] = {
    "int": int,
    "float": float,
    "bool": bool,
    "str": str,
    "tuple[float, ...]": list[float],
    "tuple[str, ...]": list[str],
}


def recipe_options() -> list[Option]:
    """Every engine option a recipe holds, training first."""
    return [o for o in (*options_of(TrainConfig), *options_of(UpdateConfig)) if o.recipe]


def _annotation(option: Option) -> Any:
    values = option.choice_values()
    if values:
        return Literal[values]  # type: ignore[valid-type]
    return _TYPES[str(option.type)]


def _field(option: Option, default: Any) -> Any:
    extra = {"max_length": 10} if _TYPES.get(str(option.type)) is list[float] else {}
    value = list(default) if isinstance(default, tuple) else default
    return Field(value, description=option.help, **option.bounds, **extra)


def creation_fields() -> type[BaseModel]:
    """A model holding every recipe option with the engine's default (``ModelCreate``'s base)."""
    fields = {o.recipe: (_annotation(o), _field(o, o.default)) for o in recipe_options()}
    return create_model(  # type: ignore[call-overload]
        "EngineOptions", __config__=ConfigDict(extra="forbid"), **fields
    )


def change_fields() -> type[BaseModel]:
    """A model holding the mutable recipe options, each None unless given (``ModelPatch``'s)."""
    fields = {
        o.recipe: (_annotation(o) | None, _field(o, None)) for o in recipe_options() if o.mutable
    }
    return create_model("EngineChanges", **fields)  # type: ignore[call-overload]


def _rule_model(strategy: str) -> type[BaseModel]:
    from lure_engine.forgetting import STRATEGIES

    fields = {
        o.name: (_annotation(o), _field(o, o.default)) for o in options_of(STRATEGIES[strategy])
    }
    return create_model(  # type: ignore[call-overload]
        f"{strategy}_options", __config__=ConfigDict(extra="forbid"), **fields
    )


def check_strategy_options(chosen: dict[str, dict]) -> dict[str, dict]:
    """Each rule's options by their declared types and bounds; ValueError naming the rule and
    the option (``strategy_options.dash: shrink: ...``). Stored as given."""
    from pydantic import ValidationError

    for strategy, options in chosen.items():
        try:
            _rule_model(strategy).model_validate(options)
        except ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'options'}: {e['msg']}" for e in error.errors()
            )
            raise ValueError(f"strategy_options.{strategy}: {problems}") from None
    return chosen


def mutable_options() -> tuple[str, ...]:
    return tuple(o.recipe for o in recipe_options() if o.mutable and o.recipe)
