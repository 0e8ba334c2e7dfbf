"""Create, list and read models; their metrics series for plotting."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from lure_core.candidates import strategy_summary
from lure_core.records import METRIC_FIELDS, MetricsRow, ModelRow, VersionRow
from service.api.auth import READ, require
from service.api.deps import Resources, db_session, model_or_404, resources
from service.api.presenters import model_out, models_out
from service.api.schemas import ModelCreate, ModelOut, ModelPatch

router = APIRouter(prefix="/v1/models", tags=["models"])


def _probe(body: ModelCreate, max_parameters: int) -> None:
    """Build the model once and run it on a blank batch (and find LLF's blocks): a model that
    cannot work is refused now, naming why, instead of failing its first update."""
    from lure_core.recipe import Recipe
    from lure_engine.forgetting.llf import later_blocks_for
    from lure_engine.models import probe_model

    recipe = Recipe.from_config(body.model_dump())
    spec = recipe.model_spec
    try:
        model = probe_model(spec, max_parameters)
        if "llf" in recipe.candidates:
            later_blocks_for(model, spec)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


@router.post("", status_code=201, response_model=ModelOut, dependencies=[require("admin")])
async def create_model(body: ModelCreate, res: Resources = Depends(resources)) -> ModelOut:
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
    await run_in_threadpool(_probe, merged, res.settings.max_model_parameters)
    with res.sessions.begin() as session:
        model = model_or_404(session, name)
        model.config = merged.model_dump(exclude={"name"})
    with res.sessions() as session:
        return model_out(session, model_or_404(session, name))


def _first_errors(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()
    )


@router.get("", response_model=list[ModelOut], dependencies=[require(READ)])
def list_models(session: Session = Depends(db_session)) -> list[ModelOut]:
    return models_out(session)


@router.get("/{name}", response_model=ModelOut, dependencies=[require(READ)])
def get_model(name: str, session: Session = Depends(db_session)) -> ModelOut:
    return model_out(session, model_or_404(session, name))


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
