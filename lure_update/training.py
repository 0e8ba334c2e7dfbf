"""The training of one candidate from its starting point: the engine's pipeline (unlearn, relearn,
importance for next time, evaluation) with the configuration resolved from the recipe, or the one
a version recorded (an audit). Every candidate of a mega-batch gets the same data and seeds.
"""

from __future__ import annotations

import torch

from lure_engine.models import build_model
from lure_engine.pipeline import MegaBatchUpdate, update_on_megabatch
from lure_engine.trainer import ProgressCallback
from lure_engine.update import UpdateConfig, UpdateSeeds
from lure_update.inputs import UpdateInputs


def starting_model(inputs: UpdateInputs) -> torch.nn.Module:
    """The model the update starts from, on the CPU."""
    model = build_model(inputs.recipe.model_spec, seed=inputs.recipe.init_seed)
    if inputs.start.state is not None:
        model.load_state_dict(inputs.start.state)
    return model


def train_candidate(
    inputs: UpdateInputs,
    strategy: str,
    device: torch.device,
    progress: ProgressCallback | None = None,
    seeds: UpdateSeeds | None = None,
    config: UpdateConfig | None = None,
) -> MegaBatchUpdate:
    """Unlearn and relearn one candidate strategy from the starting point (the engine's pipeline);
    every candidate of a mega-batch gets the same data and the same seeds. An audit passes the
    ``seeds`` and ``config`` the version recorded; otherwise they come from the recipe."""
    recipe, start = inputs.recipe, inputs.start
    mask = {k: v.to(device) for k, v in start.mask.items()} if start.mask is not None else None
    momentum = {k: v.to(device) for k, v in (start.momentum or {}).items()} or None
    return update_on_megabatch(
        starting_model(inputs).to(device),
        recipe.model_spec,
        mask,
        inputs.data,
        has_parent=start.version is not None,
        parent_cer=inputs.parent_cer,
        config=config or recipe.update_config_for(strategy),
        seeds=seeds or inputs.seeds,
        device=device,
        preprocessing=recipe.preprocessing,
        progress=progress,
        momentum=momentum,
    )
