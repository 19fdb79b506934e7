"""/v1/usage (an assistd extension): the caller's project's token usage by day and model."""

from __future__ import annotations

from fastapi import APIRouter

from assistd.http.deps import Project, Svc
from assistd.protocol.usage import UsageList

router = APIRouter(tags=["usage"])


@router.get("/usage")
async def list_usage(
    svc: Svc,
    project: Project,
    start_date: str | None = None,
    end_date: str | None = None,
    model: str | None = None,
) -> UsageList:
    return await svc.usage.daily(project, start_date=start_date, end_date=end_date, model=model)
