"""Create, list, read, change and delete models; their metrics series for plotting."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lure_core.blobs import ObjectStoreUnavailable
from lure_core.model_removal import (
    ModelBusy,
    delete_model_rows,
    remove_orphan_blobs,
)
from lure_core.records import METRIC_FIELDS, MetricsRow, ModelRow, VersionRow
from lure_update.retention import apply_retention
from lure_update.standings import strategy_summary
from service.api.auth import READ, may_touch, require
from service.api.deps import Resources, db_session, model_or_404, resources
from service.api.presenters import model_out, models_out
from service.api.schemas import ModelCreate, ModelOut, ModelPatch
from service.serving.shadow import unservable_versions

router = APIRouter(prefix="/v1/models", tags=["models"])
log = logging.getLogger("lure.api")


def _probe(body: ModelCreate, max_parameters: int) -> None:
    """Build the model's shapes once and run them on a blank batch (and find LLF's blocks): a
    model that cannot work is refused now, naming why, instead of failing its first update."""
    from lure_core.recipe import Recipe
    from service.operations.model_probe import probe

    recipe = Recipe.from_config(body.model_dump())
    spec = {
        "architecture": recipe.architecture,
        "num_classes": recipe.num_classes,
        "channels": recipe.channels,
        "image_size": recipe.image_size,
        "width": recipe.width,
        "later_blocks_override": list(recipe.later_blocks or ()),
    }
    try:
        probe(spec, max_parameters, later_blocks="llf" in recipe.candidates)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


@router.post("", status_code=201, response_model=ModelOut, dependencies=[require("admin")])
async def create_model(
    body: ModelCreate, request: Request, res: Resources = Depends(resources)
) -> ModelOut:
    if not may_touch(request, body.name):
        raise HTTPException(
            403, f"this API key may not create a model named {body.name!r} (outside its models)"
        )
    if body.shadow:
        raise HTTPException(422, "shadow: a new model has no versions yet; PATCH it in later")
    await run_in_threadpool(_probe, body, res.settings.max_model_parameters)
    return await run_in_threadpool(_store, body, res)


def _store(body: ModelCreate, res: Resources) -> ModelOut:
    config = body.model_dump(exclude={"name"})
    try:
        with res.sessions.begin() as session:
            session.add(ModelRow(name=body.name, config=config))
    except IntegrityError:
        raise HTTPException(409, f"model {body.name!r} already exists") from None
    with res.sessions() as session:
        return model_out(session, model_or_404(session, body.name))


@router.patch("/{name}", response_model=ModelOut, dependencies=[require("admin")])
async def change_model(
    name: str, body: ModelPatch, res: Resources = Depends(resources)
) -> ModelOut:
    """Change the fields that may change (strategy, challengers, promotion policy, class names);
    the next update uses them. The whole recipe is validated again, as at creation."""
    changes = body.model_dump(exclude_unset=True)
    with res.sessions() as session:
        config = dict(model_or_404(session, name).config)
    try:
        merged = ModelCreate(name=name, **{**config, **changes})
    except ValidationError as error:
        raise HTTPException(422, _first_errors(error)) from None
    if {"strategy", "challengers"} & set(changes):  # LLF may need blocks it did not
        await run_in_threadpool(_probe, merged, res.settings.max_model_parameters)
    with res.sessions.begin() as session:
        model = model_or_404(session, name)
        _shadows_servable(session, model, changes.get("shadow"))
        model.config = merged.model_dump(exclude={"name"})
        model_id = model.id
    res.live.forget(name)  # /predict names classes from the recipe
    if "keep_versions" in changes:  # a tighter limit applies now, not after the next update
        await run_in_threadpool(apply_retention, res.sessions, res.blobs, model_id)
    with res.sessions() as session:
        return model_out(session, model_or_404(session, name))


def _shadows_servable(session: Session, model: ModelRow, numbers: list[int] | None) -> None:
    """422 naming the shadow versions that do not exist or cannot serve (damaged, pruned)."""
    bad = unservable_versions(session, model.id, numbers or [])
    if bad:
        raise HTTPException(
            422,
            f"shadow: model {model.name!r} has no servable version {', '.join(map(str, bad))} "
            "(never published, damaged or pruned)",
        )


def _first_errors(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
    )


@router.get("", response_model=list[ModelOut], dependencies=[require(READ)])
def list_models(
    request: Request, session: Session = Depends(db_session), res: Resources = Depends(resources)
) -> list[ModelOut]:
    """Every model this key reaches."""
    ids = dict(session.execute(select(ModelRow.name, ModelRow.id)).all())  # one query for all
    return [
        m.model_copy(update={"disk_bytes": res.disk.of(ids[m.name])})
        for m in models_out(session)
        if may_touch(request, m.name)
    ]


@router.get("/{name}", response_model=ModelOut, dependencies=[require(READ)])
def get_model(
    name: str, session: Session = Depends(db_session), res: Resources = Depends(resources)
) -> ModelOut:
    return _with_disk_use(res, session, model_out(session, model_or_404(session, name)))


def _with_disk_use(res: Resources, session: Session, out: ModelOut) -> ModelOut:
    model = model_or_404(session, out.name)
    return out.model_copy(update={"disk_bytes": res.disk.of(model.id)})


@router.delete("/{name}", status_code=204, dependencies=[require("admin")])
def delete_model(name: str, res: Resources = Depends(resources)) -> Response:
    """Delete the model: its rows in one transaction, then its blobs. A crash between the two
    leaves orphaned blobs that the next delete, or the next API start, removes."""
    try:
        with res.sessions.begin() as session:
            model = model_or_404(session, name)
            model_id = model.id
            delete_model_rows(session, model)
    except ModelBusy as error:
        raise HTTPException(409, str(error)) from None
    finally:  # this model's folder, or one a crashed delete left
        _remove_orphan_blobs(res)
    res.models.forget(model_id)
    res.live.forget(name)
    res.disk.forget(model_id)
    log.info("model %s deleted", name, extra={"model": name})
    return Response(status_code=204)


def _remove_orphan_blobs(res: Resources) -> None:
    """Now, or once the object store answers again: the rows are what the delete promised."""
    try:
        remove_orphan_blobs(res.sessions, res.blobs)
    except ObjectStoreUnavailable as error:
        log.warning("blobs of deleted models are removed once the store answers: %s", error)
        res.maintenance.deleted()


@router.get("/{name}/strategies", dependencies=[require(READ)])
def strategies(name: str, session: Session = Depends(db_session)) -> dict:
    """Which candidate strategies train, how often each won its mega-batch, what each costs."""
    model = model_or_404(session, name)
    return strategy_summary(session, model.id, model.recipe)


@router.get("/{name}/metrics", dependencies=[require(READ)])
def metrics_series(name: str, session: Session = Depends(db_session)) -> dict:
    """Per version, in publication order: the anytime metrics, ready to plot."""
    model = model_or_404(session, name)
    rows = session.execute(
        select(VersionRow, MetricsRow)
        .join(MetricsRow, MetricsRow.version_id == VersionRow.id)
        .where(VersionRow.model_id == model.id)
        .order_by(VersionRow.number)
    ).all()
    series: dict = {
        "model": name,
        "live_version": model.live_version,
        "versions": [v.number for v, _ in rows],
        "parents": [v.parent_number for v, _ in rows],
    }
    for field in METRIC_FIELDS:
        series[field] = [getattr(m, field) for _, m in rows]
    return series
