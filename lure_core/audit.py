"""Rebuild a published version from its records and compare it with what was published.

The audit reads the version's recorded parent, replay source, mega-batch and seeds, re-runs the
same update (``lure_core.update_inputs.train_candidate``, the code the worker ran) and compares
the sha256 of the rebuilt weights with the recorded one. On the CPU with the recorded thread count
the rebuild is bit for bit; on CUDA only updates trained with ``LURE_DETERMINISTIC=true`` are
(docs/SERVER.md, "Audit").

It runs in its own process (``run_audit_process``): it sets the torch thread count and loads a
whole update's data, neither of which may touch the API process that serves ``/predict``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

from lure_core.settings import SharedSettings


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


def audit_version(settings: SharedSettings, model_name: str, number: int) -> dict:
    """``result``: match, mismatch, or not_auditable (imported weights, records from before
    audits), with the reasons and the numbers."""
    import torch
    from safetensors.torch import save as save_safetensors
    from sqlalchemy import select

    from lure_core.blobs import BlobStore, ChecksumMismatch, sha256_hex
    from lure_core.checkpoints import load_state
    from lure_core.database import make_engine, make_session_factory
    from lure_core.lineage import version_row
    from lure_core.records import MegaBatchRow, ModelRow, Origin
    from lure_core.update_inputs import (
        StartingPoint,
        gather_inputs,
        read_starting_point,
        train_candidate,
        train_ids_digest,
    )
    from lure_engine.update import UpdateSeeds

    engine = make_engine(settings.resolved_database_url)
    sessions, blobs = make_session_factory(engine), BlobStore(settings.blob_dir)
    report: dict = {"model": model_name, "version": number}
    try:
        with sessions() as session:
            model = session.scalar(select(ModelRow).where(ModelRow.name == model_name))
            version = version_row(session, model.id, number) if model else None
            if version is None:
                return {**report, "result": "not_found"}
            if version.origin == Origin.IMPORT or version.inputs is None:
                why = (
                    "imported weights: no update built them"
                    if version.origin == Origin.IMPORT
                    else "published before versions recorded their update inputs"
                )
                return {**report, "result": "not_auditable", "reason": why}
            record = version.inputs
            parent = (
                version_row(session, model.id, record["parent"])
                if record["parent"] is not None
                else None
            )
            try:
                start = (
                    read_starting_point(blobs, parent)
                    if parent
                    else StartingPoint(None, None, None)
                )
            except (ChecksumMismatch, FileNotFoundError) as error:
                return {
                    **report,
                    "result": "not_auditable",
                    "reason": f"its parent's stored checkpoint cannot be read intact: {error}",
                }
            replay_from = (
                version_row(session, model.id, record["replay_from"])
                if record["replay_from"] is not None
                else None
            )
            megabatch = session.get(MegaBatchRow, version.megabatch_id)
            inputs = gather_inputs(
                session, blobs, model.id, model.recipe, megabatch, start, replay_from
            )
            recorded_seeds = UpdateSeeds(
                version.seeds["reinit"], version.seeds["train"], version.seeds["importance"]
            )
            strategy, recorded_sha = version.strategy, version.checkpoint_sha256
            checkpoint_key = version.checkpoint_key
        digest = train_ids_digest(inputs.train_ids)
        report |= {
            "recorded_sha256": recorded_sha,
            "strategy": strategy,
            "parent": record["parent"],
            "replay_from": record["replay_from"],
            "torch_threads": record["torch_threads"],
        }
        if digest != record["train_ids_sha256"]:
            return {
                **report,
                "result": "mismatch",
                "reason": "the recorded replay memory and mega-batch no longer give the sample "
                "references the version was trained on",
            }
        torch.set_num_threads(record["torch_threads"])
        torch.use_deterministic_algorithms(bool(record.get("deterministic")))
        device = torch.device("cpu")
        rebuilt = train_candidate(inputs, strategy, device, seeds=recorded_seeds).model
        state = {k: v.detach().to("cpu").contiguous() for k, v in rebuilt.state_dict().items()}
        rebuilt_sha = sha256_hex(save_safetensors(state))
        report["rebuilt_sha256"] = rebuilt_sha
        if rebuilt_sha == recorded_sha:
            return {**report, "result": "match"}
        try:
            stored = load_state(blobs, checkpoint_key, recorded_sha)
        except (ChecksumMismatch, FileNotFoundError) as error:
            return {
                **report,
                "result": "mismatch",
                "reason": f"the stored checkpoint fails its recorded sha256 too: {error}",
            }
        return {
            **report,
            "result": "mismatch",
            "reason": "the rebuilt weights differ from the published ones",
            "first_difference": _first_difference(state, stored),
        }
    finally:
        engine.dispose()


def run_audit_process(settings: SharedSettings, model_name: str, number: int) -> dict:
    """The audit in a fresh process (spawned: no state of the caller's torch is inherited)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(audit_version, settings, model_name, number).result()
