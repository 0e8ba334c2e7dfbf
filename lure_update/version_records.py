"""Step 3 of an update: each candidate's weights and forget-mask as safetensors (written
atomically, sha256 recorded) and its version row: the gate verdict, the lineage evidence, the
resolved configuration and what an audit needs to rebuild it. ``lure_update/publish.py`` then writes
the rows in one transaction.
"""

from __future__ import annotations

import time

import torch

from lure_core.blobs import BlobStore
from lure_core.checkpoints import save_state
from lure_core.drift import Answers
from lure_core.records import VersionRow
from lure_engine.data_gate import json_safe
from lure_engine.gate import GateEvaluation, margin
from lure_engine.lineage_evidence import Discordance
from lure_update.publish import Published
from lure_update.run import AttemptResult, Candidate
from lure_update.selection import LineageChoice, pairs


def version_rows(blobs: BlobStore, result: AttemptResult) -> list[Published]:
    """Every candidate saved as a version, in the order trained (``result.best`` indexes it)."""
    policy = result.plan.inputs.recipe.policy
    lineages = _lineage_records(result.candidates, result.fresh, result.choice)
    if result.race is not None:  # every sibling carries the race: the next plan reads one
        for record in lineages.values():
            if record is not None:
                record["race"] = result.race.to_dict()
    replay_state = result.plan.lineup.live.replay_after()
    return [
        Published(
            _version_row(
                blobs,
                c,
                _gate_record(c, result.winner, result.live, policy.rank_by, lineages[c.strategy]),
                replay_state,
            ),
            c.update.metrics,
        )
        for c in result.candidates
    ]


def _version_row(
    blobs: BlobStore, candidate: Candidate, gate: dict, replay_state: dict
) -> VersionRow:
    """Weights and forget-mask as safetensors (atomic, sha256 recorded); the version's
    record, its gate verdict and what an audit needs to rebuild it."""
    inputs = candidate.inputs
    attempt_prefix = f"mb{inputs.megabatch_index:05d}-{candidate.strategy}-{time.time_ns()}"
    prefix = f"models/{inputs.model_id}/versions/{attempt_prefix}"
    update = candidate.update
    checkpoint_sha = save_state(blobs, f"{prefix}/weights.safetensors", update.model.state_dict())
    mask_key = mask_sha = None
    if update.next_mask is not None:
        mask_key = f"{prefix}/mask.safetensors"
        mask_sha = save_state(
            blobs, mask_key, {k: v.to(torch.uint8) for k, v in update.next_mask.items()}
        )
    momentum_key = momentum_sha = None
    if update.result.train.momentum:  # the recipe carries SGD momentum to the next update
        momentum_key = f"{prefix}/momentum.safetensors"
        momentum_sha = save_state(blobs, momentum_key, update.result.train.momentum)
    recipe, seeds, parent = inputs.recipe, inputs.seeds, inputs.start.version
    return VersionRow(
        model_id=inputs.model_id,
        parent_number=parent.number if parent else None,
        strategy=candidate.strategy,
        seeds={
            "model_seed": recipe.seed,
            "init": recipe.init_seed,
            "split": recipe.split_seed(inputs.megabatch_index),
            "reinit": seeds.reinit,
            "train": seeds.train,
            "importance": seeds.importance,
            **(
                {"initial_mask": "computed on this mega-batch: the parent had none"}
                if update.result.initial_mask
                else {}
            ),
        },
        checkpoint_key=f"{prefix}/weights.safetensors",
        checkpoint_sha256=checkpoint_sha,
        mask_key=mask_key,
        mask_sha256=mask_sha,
        momentum_key=momentum_key,
        momentum_sha256=momentum_sha,
        replay_state=replay_state,
        gate=gate,
        inputs=inputs.record(),
        config=candidate.config,
        candidate_seconds=candidate.seconds,
        drift_reference=drift_reference(candidate.evaluation),
    )


def drift_reference(evaluation: GateEvaluation) -> dict | None:
    """The version's answers on its gate rows: what its live traffic is compared with."""
    if evaluation.confidence is None or not evaluation.count:
        return None
    return Answers.of(evaluation.confidence.tolist(), evaluation.predictions.tolist()).to_record()


def _gate_record(
    candidate: Candidate,
    best: Candidate,
    live: GateEvaluation | None,
    rank_by: str,
    lineage: dict | None,
) -> dict:
    """``tied``: a sibling that scored exactly what the winner scored (on the first mega-batch
    lure and warm train the same weights): not a loss, so it does not count toward retirement.
    ``lineage`` (with lineages): its parent, whether it extends its lineage, its discordant
    rows against each sibling and the choice of the live lineage."""
    score = candidate.evaluation.score(rank_by)
    record = {
        **candidate.verdict.to_dict(),
        "winner": candidate is best,
        "tied": candidate is not best and score == best.evaluation.score(rank_by),
        "rank_by": rank_by,
        "margin": json_safe(margin(candidate.evaluation, live, rank_by)),
    }
    if lineage is not None:
        record["lineage"] = json_safe({**candidate.lineage, **lineage})
    return record


def _lineage_records(
    candidates: list[Candidate],
    fresh: dict[str, dict[str, Discordance]],
    choice: LineageChoice | None,
) -> dict[str, dict | None]:
    """Per strategy, what its gate record says about lineages (None: lineages off): the
    candidates' discordant gate rows (``pairs``), their parents' on the new mega-batch's rows
    (``prequential_pairs``: the evidence the live lineage is chosen on) and the choice."""
    if choice is None:
        return {c.strategy: None for c in candidates}
    discordant = pairs({c.strategy: c.evaluation for c in candidates})

    def others(table: dict[str, Discordance], this: str) -> dict:
        return {other: d.to_dict() for other, d in table.items() if other != this}

    return {
        c.strategy: {
            "pairs": others(discordant[c.strategy], c.strategy),
            "prequential_pairs": others(fresh.get(c.strategy, {}), c.strategy),
            "choice": choice.to_dict(),
        }
        for c in candidates
    }
