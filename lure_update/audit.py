"""Rebuild a published version from its records and compare it with what was published.

The audit reads the version's recorded parent, replay source, mega-batch and seeds, re-runs the
same update (``lure_update.inputs.train_candidate``, the code the worker ran) and compares
the sha256 of the rebuilt weights with the recorded one. On the CPU with the recorded thread count
the rebuild is bit for bit; on CUDA only updates trained with ``LURE_DETERMINISTIC=true`` are
(docs/SERVER.md, "Audit").

It runs in its own process (``run_audit_process``): it sets the torch thread count and loads a
whole update's data, neither of which may touch the API process that serves ``/predict``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lure_core.settings import SharedSettings

if TYPE_CHECKING:  # torch and the engine load only in the audit process
    from lure_engine.update import UpdateConfig, UpdateSeeds
    from lure_update.inputs import UpdateInputs


def _first_difference(rebuilt: dict, stored: dict) -> dict:
    """The first tensor (in name order) that differs, and by how much."""
    for name in sorted(set(rebuilt) | set(stored)):
        if name not in rebuilt or name not in stored:
            return {"tensor": name, "problem": "present in only one of the two"}
        a, b = rebuilt[name], stored[name]
        if a.shape != b.shape or a.dtype != b.dtype:
            return {"tensor": name, "problem": f"{tuple(a.shape)} vs {tuple(b.shape)}"}
        if not a.equal(b):
            diff = (a.double() - b.double()).abs()
            return {
                "tensor": name,
                "max_abs_difference": float(diff.max()),
                "elements_differing": int((diff > 0).sum()),
                "elements": a.numel(),
            }
    return {}


def not_auditable_reason(version) -> str | None:
    """Why ``version`` cannot be rebuilt at all (imported weights, records from before audits),
    decided from its row alone: the API answers this without starting an audit process."""
    from lure_core.records import Origin

    if version.origin == Origin.IMPORT:
        return "imported weights: no update built them"
    if version.inputs is None:
        return "published before versions recorded their update inputs"
    return None


@dataclass
class AuditPlan:
    """What an audit rebuilds: the recorded inputs, gathered again, and what to compare with."""

    inputs: UpdateInputs
    seeds: UpdateSeeds
    config: UpdateConfig | None  # the recorded one; None: the recipe's (versions before 0.2)
    strategy: str
    recorded_sha: str
    checkpoint_key: str
    record: dict


def plan_from_version(
    session, blobs, model_name: str, number: int, report: dict
) -> AuditPlan | dict:
    """The audit's inputs from the version's records, or its final answer when it cannot run."""
    from sqlalchemy import select

    from lure_core.blobs import ChecksumMismatch
    from lure_core.model_store import version_row
    from lure_core.records import MegaBatchRow, ModelRow
    from lure_engine.update import UpdateSeeds, update_config_from_dict
    from lure_update.inputs import LostData, gather_inputs
    from lure_update.starting_point import StartingPoint, read_starting_point

    model = session.scalar(select(ModelRow).where(ModelRow.name == model_name))
    version = version_row(session, model.id, number) if model else None
    if version is None:
        return {**report, "result": "not_found"}
    if (why := not_auditable_reason(version)) is not None:
        return {**report, "result": "not_auditable", "reason": why}
    record = version.inputs
    assert record is not None  # not_auditable_reason refused versions without one
    parent = version_row(session, model.id, record["parent"]) if record["parent"] else None
    replay_from = (
        version_row(session, model.id, record["replay_from"])
        if record["replay_from"] is not None
        else None
    )
    try:
        start = read_starting_point(blobs, parent) if parent else StartingPoint(None, None, None)
    except (ChecksumMismatch, FileNotFoundError) as error:
        why = f"its parent's stored checkpoint cannot be read intact: {error}"
        return {**report, "result": "not_auditable", "reason": why}
    megabatch = session.get(MegaBatchRow, version.megabatch_id)
    try:
        inputs = gather_inputs(
            session, blobs, model.id, model.recipe, megabatch, start, replay_from
        )
    except LostData as error:
        return {**report, "result": "not_auditable", "reason": str(error)}
    newly_lost = sorted(set(inputs.lost_chunks) - set(record.get("lost_chunks", [])))
    if newly_lost:
        why = "chunk blobs it was trained on are lost since: " + "; ".join(
            inputs.lost_chunks[c] for c in newly_lost
        )
        return {**report, "result": "not_auditable", "reason": why}
    seeds = version.seeds
    return AuditPlan(
        inputs,
        UpdateSeeds(seeds["reinit"], seeds["train"], seeds["importance"], seeds.get("init")),
        update_config_from_dict(version.config) if version.config is not None else None,
        version.strategy,
        version.checkpoint_sha256,
        version.checkpoint_key,
        record,
    )


def _rebuild(plan: AuditPlan) -> dict:
    """Train the recorded update again, on the CPU with the recorded thread count."""
    import torch

    from lure_update.training import train_candidate

    torch.set_num_threads(plan.record["torch_threads"])
    torch.use_deterministic_algorithms(bool(plan.record.get("deterministic")))
    rebuilt = train_candidate(
        plan.inputs, plan.strategy, torch.device("cpu"), seeds=plan.seeds, config=plan.config
    ).model
    return {k: v.detach().to("cpu").contiguous() for k, v in rebuilt.state_dict().items()}


def _compare(plan: AuditPlan, blobs, report: dict) -> dict:
    """Rebuild, then hold the rebuilt weights against the record *and* the stored file: a
    replaced checkpoint is a mismatch even when the rebuild matches what was recorded."""
    from safetensors.torch import save as save_safetensors

    from lure_core.blobs import ChecksumMismatch, sha256_hex
    from lure_core.checkpoints import load_state

    state = _rebuild(plan)
    report["rebuilt_sha256"] = sha256_hex(save_safetensors(state))
    try:
        stored = load_state(blobs, plan.checkpoint_key, plan.recorded_sha)
    except (ChecksumMismatch, FileNotFoundError) as error:
        return {
            **report,
            "result": "mismatch",
            "reason": f"the stored checkpoint fails its recorded sha256: {error}",
        }
    if report["rebuilt_sha256"] == plan.recorded_sha:
        return {**report, "result": "match"}
    return {
        **report,
        "result": "mismatch",
        "reason": "the rebuilt weights differ from the published ones",
        "first_difference": _first_difference(state, stored),
    }


def audit_version(settings: SharedSettings, model_name: str, number: int) -> dict:
    """``result``: match, mismatch, or not_auditable (imported weights, records from before
    audits, lost inputs), with the reasons and the numbers."""
    from lure_core.blob_backend import open_blob_store
    from lure_core.database import make_engine, make_session_factory
    from lure_update.inputs import train_ids_digest

    engine = make_engine(settings.resolved_database_url)
    sessions, blobs = make_session_factory(engine), open_blob_store(settings)
    report: dict = {"model": model_name, "version": number}
    try:
        with sessions() as session:
            plan = plan_from_version(session, blobs, model_name, number, report)
        if isinstance(plan, dict):
            return plan
        report |= {
            "recorded_sha256": plan.recorded_sha,
            "strategy": plan.strategy,
            "parent": plan.record["parent"],
            "replay_from": plan.record["replay_from"],
            "torch_threads": plan.record["torch_threads"],
        }
        if train_ids_digest(plan.inputs.train_ids) != plan.record["train_ids_sha256"]:
            return {
                **report,
                "result": "mismatch",
                "reason": "the recorded replay memory and mega-batch no longer give the sample "
                "references the version was trained on",
            }
        return _compare(plan, blobs, report)
    finally:
        engine.dispose()


def run_audit_process(settings: SharedSettings, model_name: str, number: int) -> dict:
    """The audit in a fresh process (spawned: no state of the caller's torch is inherited)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(audit_version, settings, model_name, number).result()
