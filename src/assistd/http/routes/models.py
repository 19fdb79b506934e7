"""/v1/models and /healthz"""

from __future__ import annotations

from fastapi import APIRouter

from assistd.http.deps import Project, Svc
from assistd.protocol.models import AliasModelObject, ModelList, ModelObject

router = APIRouter(prefix="/models", tags=["models"])
health = APIRouter(tags=["health"])


@router.get("")
async def list_models(svc: Svc, project: Project) -> ModelList:
    return svc.models.list()


@router.get("/{model:path}")
async def get_model(svc: Svc, project: Project, model: str) -> AliasModelObject | ModelObject:
    return svc.models.get(model)


@health.get("/healthz")
async def healthz(svc: Svc) -> dict[str, str]:
    await svc.db.ping()
    # A missing optional part (the bundled model's package) is reported, not a failure.
    return {"status": "ok", **svc.models.health()}
