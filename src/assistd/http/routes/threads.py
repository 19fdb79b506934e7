"""/v1/threads (runs under threads are routes/runs.py, included first: /threads/runs is
theirs). ``GET /v1/threads`` is an assistd extension: OpenAI cannot list threads."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistd.http.deps import Page, Project, Svc, json_body
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.threads import CreateThreadRequest, ModifyThreadRequest, ThreadObject

router = APIRouter(prefix="/threads", tags=["threads"])


@router.post("")
async def create_thread(
    svc: Svc,
    project: Project,
    body: Annotated[CreateThreadRequest, Depends(json_body(CreateThreadRequest))],
) -> ThreadObject:
    return await svc.threads.create(project, body)


@router.get("")
async def list_threads(svc: Svc, project: Project, page: Page) -> ListResponse[ThreadObject]:
    return await svc.threads.list(project, page)


@router.get("/{thread_id}")
async def get_thread(svc: Svc, project: Project, thread_id: str) -> ThreadObject:
    return await svc.threads.get(project, thread_id)


@router.post("/{thread_id}")
async def modify_thread(
    svc: Svc,
    project: Project,
    thread_id: str,
    body: Annotated[ModifyThreadRequest, Depends(json_body(ModifyThreadRequest))],
) -> ThreadObject:
    return await svc.threads.modify(project, thread_id, body)


@router.delete("/{thread_id}")
async def delete_thread(svc: Svc, project: Project, thread_id: str) -> DeletedResponse:
    return await svc.threads.delete(project, thread_id)
