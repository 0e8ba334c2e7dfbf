"""Published versions with lineage and metrics; promotion (rollback) of an older one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lure_core.blobs import ChecksumMismatch
from lure_core.live_pointer import promote as promote_version
from lure_core.records import ExportRow, GateVerdict, ModelRow, VersionRow
from lure_update.damaged_versions import clear_damage, record_damage
from service.api.auth import READ, require
from service.api.deps import (
    Resources,
    VersionNumber,
    db_session,
    model_or_404,
    pruned_message,
    resources,
    version_or_404,
)
from service.api.presenters import version_out, versions_out
from service.api.schemas import VersionOut
from service.operations.memory import release_freed_memory
from service.transfer.exports import FORMATS, ExportFailed, build_export, find_export
from service.transfer.import_stream import HeaderRefused, WeightsDoNotFit, receive_weights
from service.transfer.imports import (
    ImportRefused,
    fit_problems,
    import_weights,
    not_fitting,
    refuse_if_versions,
)

router = APIRouter(prefix="/v1/models/{name}/versions", tags=["versions"])


@router.get("", response_model=list[VersionOut], dependencies=[require(READ)])
def list_versions(name: str, session: Session = Depends(db_session)) -> list[VersionOut]:
    model = model_or_404(session, name)
    return versions_out(session, model)


@router.get("/{number}", response_model=VersionOut, dependencies=[require(READ)])
def get_version(
    name: str, number: VersionNumber, session: Session = Depends(db_session)
) -> VersionOut:
    model = model_or_404(session, name)
    return version_out(
        session, model, version_or_404(session, model, number), with_reliability=True
    )


@router.post("/{number}/promote", response_model=VersionOut, dependencies=[require("admin")])
def promote(
    name: str, number: VersionNumber, request: Request, res: Resources = Depends(resources)
) -> VersionOut:
    """Serve ``number``; the next update starts from its exact state: weights, mask and replay
    memory (a rollback also drops the data of the versions rolled back from).

    A promotion wins over updates already running: they publish their versions without making
    them live (``release: superseded``). Promoting a version the gate held is recorded on it as
    ``forced``, with the admin key's name.
    """
    with res.sessions() as session:
        model = model_or_404(session, name)
        _verify_stored_files(res, model, version_or_404(session, model, number))
    with res.sessions.begin() as session:
        model = model_or_404(session, name)
        version = version_or_404(session, model, number)
        if version.damaged:
            raise HTTPException(
                409, f"version {number} is damaged and cannot be served: {version.damaged}"
            )
        promote_version(session, model.id, number)  # one UPDATE: concurrent ones each count
        if version.gate and version.gate.get("verdict") == GateVerdict.HELD:
            principal = getattr(request.state, "principal", None)
            version.gate = {
                **version.gate,
                "verdict": GateVerdict.FORCED,
                "forced_by": principal.name if principal else "anonymous",
                "forced_at": datetime.now(UTC).isoformat(),
            }
    res.live.forget(name)  # this process serves it at once; others within their cache time
    with res.sessions() as session:
        model = model_or_404(session, name)
        return version_out(session, model, version_or_404(session, model, number))


def _verify_stored_files(res: Resources, model: ModelRow, version: VersionRow) -> None:
    """A 409 unless the version's stored files match their sha256 now: a promotion trusts them
    again, and a copy this process holds in memory proves nothing about the bytes on disk or in
    the bucket, which the next update and every other replica read. A failure is recorded on
    the version (as ``/predict`` and updates record it) and its loaded copy dropped."""
    if version.pruned_at is not None:
        raise HTTPException(409, pruned_message(version, model))
    files = (
        (version.checkpoint_key, version.checkpoint_sha256),
        (version.mask_key, version.mask_sha256),
        (version.momentum_key, version.momentum_sha256),
    )
    try:
        for key, sha256 in files:
            if key and sha256:
                res.blobs.verify_stored(key, sha256)
    except ChecksumMismatch as error:
        record_damage(res.sessions, version, str(error))
        res.models.drop(version)
        raise HTTPException(
            409, f"version {version.number} is damaged and cannot be served: {error}"
        ) from None
    clear_damage(res.sessions, version)  # restored from a backup: usable again


CLOSE = {"Connection": "close"}


@router.post(
    "/import",
    status_code=201,
    response_model=VersionOut,
    dependencies=[require("admin")],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary"},
                    "description": "a safetensors state dict that fits the architecture exactly",
                }
            },
        }
    },
)
async def import_version(
    name: str, request: Request, response: Response, res: Resources = Depends(resources)
) -> VersionOut:
    """Import a team's trained weights (safetensors) as version 0 of a model with no versions
    yet; it goes live at once and updates start from it. ``lure import`` converts a .pt/.pth.

    The body's header is checked against the model as it streams in, and only a body that fits
    is received (into a file, not memory: ``service/transfer/import_stream.py``). The connection
    is closed after a refusal, whose unread rest is not waited for."""
    with res.sessions() as session:
        model = model_or_404(session, name)
        model_id, recipe = model.id, model.recipe
    path = None
    try:
        await run_in_threadpool(refuse_if_versions, res.sessions, model_id)
        problems_of = await run_in_threadpool(fit_problems, recipe)
        declared = request.headers.get("content-length")
        path = await receive_weights(
            request.stream(),
            problems_of,
            res.settings.data_dir / "incoming",
            int(declared) if declared and declared.isdigit() else None,
        )
        await run_in_threadpool(import_weights, res.sessions, res.blobs, model_id, path)
    except WeightsDoNotFit as error:
        refused = not_fitting(recipe.architecture, error.problems)
        raise HTTPException(refused.status, str(refused), headers=CLOSE) from None
    except (ImportRefused, HeaderRefused) as error:
        status = error.status if isinstance(error, ImportRefused) else 422
        raise HTTPException(status, str(error), headers=CLOSE) from None
    finally:
        if path is not None:
            path.unlink(missing_ok=True)
            release_freed_memory()  # the weights it loaded go back to the system, not the heap
    response.headers.update(CLOSE)
    res.live.forget(name)
    with res.sessions() as session:
        model = model_or_404(session, name)
        return version_out(session, model, version_or_404(session, model, 0))


ExportFormat = Literal["safetensors", "torchscript", "onnx"]
FORMAT_QUERY = Query("onnx", description="safetensors (weights), torchscript or onnx (uint8 in)")


@dataclass(frozen=True)
class ExportTarget:
    name: str
    number: int
    format: str


def export_target(
    name: str, number: VersionNumber, format: ExportFormat = FORMAT_QUERY
) -> ExportTarget:
    return ExportTarget(name, number, format)


def _export(res: Resources, target: ExportTarget) -> tuple[ExportRow, bytes]:
    """The stored export (built and verified on first request) and its verified bytes."""
    with res.sessions() as session:
        model = model_or_404(session, target.name)
        version = version_or_404(session, model, target.number)
        if version.pruned_at is not None:
            raise HTTPException(410, pruned_message(version, model))
    row = find_export(res.sessions, version.id, target.format)
    if row is None:
        try:
            row = build_export(res.sessions, res.blobs, model.id, target.number, target.format)
        except ChecksumMismatch as error:
            message = f"version {target.number} is damaged and cannot be exported: {error}"
            raise HTTPException(409, message) from None
        except ExportFailed as error:
            raise HTTPException(500, str(error)) from None
    return row, res.blobs.read(row.blob_key, row.sha256)


@router.get(
    "/{number}/export",
    dependencies=[require("admin")],
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def export_version(
    target: ExportTarget = Depends(export_target), res: Resources = Depends(resources)
) -> Response:
    """The version as a file: ``X-Artefact-Sha256`` and the card's route say what it is."""
    row, data = await run_in_threadpool(_export, res, target)
    filename = f"{target.name}-v{target.number}.{FORMATS[target.format]}"
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "X-Artefact-Sha256": row.sha256,
    }
    return Response(data, media_type="application/octet-stream", headers=headers)


@router.get("/{number}/export/card", dependencies=[require("admin")])
async def export_card(
    target: ExportTarget = Depends(export_target), res: Resources = Depends(resources)
) -> dict:
    """The model card of an export: architecture, classes, preprocessing, metrics, lineage,
    the artefact's sha256 and how it was verified."""
    row, _ = await run_in_threadpool(_export, res, target)
    return row.card


@router.post("/{number}/audit", dependencies=[require("admin")])
async def audit(name: str, number: VersionNumber, res: Resources = Depends(resources)) -> dict:
    """Rebuild version ``number`` from its records (parent, replay source, mega-batch, seeds) and
    compare the rebuilt weights' sha256 with the recorded one (``lure_update/audit.py``). Runs a
    whole update in a separate process: as long as that version's update took."""
    from lure_update.audit import not_auditable_reason, run_audit_process

    with res.sessions() as session:
        model = model_or_404(session, name)
        version = version_or_404(session, model, number)
        if version.pruned_at is not None:
            raise HTTPException(409, pruned_message(version, model))
        why = not_auditable_reason(version)  # answered here, without an audit process
    if why is not None:
        return {"model": name, "version": number, "result": "not_auditable", "reason": why}
    return await run_in_threadpool(run_audit_process, res.settings, name, number)
