"""Shadow versions' record (issue 28 §5): what the versions in a model's ``shadow`` answered on
logged requests, against the version that answered."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from service.api.auth import READ, require
from service.api.deps import db_session, model_or_404
from service.serving.shadow import shadow_record

router = APIRouter(prefix="/v1/models/{name}", tags=["feedback"])


class ShadowVersionOut(BaseModel):
    version: int
    answered: int = Field(description="logged requests it answered in the shadow")
    agreement: float | None = Field(description="share where it said what the answer said")
    labelled: int = Field(description="of those, requests labelled through /feedback")
    accuracy: float | None = Field(description="its accuracy on the labelled ones")
    served_accuracy: float | None = Field(
        description="the answering versions' accuracy on the same labelled requests"
    )


class ShadowOut(BaseModel):
    shadow: list[int] = Field(description="the versions shadowing now (the recipe's shadow)")
    versions: list[ShadowVersionOut] = Field(description="every version that has shadowed")


@router.get("/shadow", response_model=ShadowOut, dependencies=[require(READ)])
def get_shadow(name: str, session: Session = Depends(db_session)) -> ShadowOut:
    model = model_or_404(session, name)
    return ShadowOut(
        shadow=list(model.recipe.shadow),
        versions=[ShadowVersionOut(**entry) for entry in shadow_record(session, model.id)],
    )
