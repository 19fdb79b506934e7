"""/v1/assistants"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistd.http.deps import Page, Project, Svc, json_body
from assistd.protocol.assistants import (
    AssistantObject,
    CreateAssistantRequest,
    ModifyAssistantRequest,
)
from assistd.protocol.common import DeletedResponse, ListResponse

router = APIRouter(prefix="/assistants", tags=["assistants"])


@router.post("")
async def create_assistant(
    svc: Svc,
    project: Project,
    body: Annotated[CreateAssistantRequest, Depends(json_body(CreateAssistantRequest))],
) -> AssistantObject:
    return await svc.assistants.create(project, body)


@router.get("")
async def list_assistants(svc: Svc, project: Project, page: Page) -> ListResponse[AssistantObject]:
    return await svc.assistants.list(project, page)


@router.get("/{assistant_id}")
async def get_assistant(svc: Svc, project: Project, assistant_id: str) -> AssistantObject:
    return await svc.assistants.get(project, assistant_id)


@router.post("/{assistant_id}")
async def modify_assistant(
    svc: Svc,
    project: Project,
    assistant_id: str,
    body: Annotated[ModifyAssistantRequest, Depends(json_body(ModifyAssistantRequest))],
) -> AssistantObject:
    return await svc.assistants.modify(project, assistant_id, body)


@router.delete("/{assistant_id}")
async def delete_assistant(svc: Svc, project: Project, assistant_id: str) -> DeletedResponse:
    return await svc.assistants.delete(project, assistant_id)
