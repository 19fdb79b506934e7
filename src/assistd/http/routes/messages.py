"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistd.http.deps import Page, Project, Svc, json_body
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.messages import CreateMessageRequest, MessageObject, ModifyMessageRequest

router = APIRouter(prefix="/threads/{thread_id}/messages", tags=["messages"])


@router.post("")
async def create_message(
    svc: Svc,
    project: Project,
    thread_id: str,
    body: Annotated[CreateMessageRequest, Depends(json_body(CreateMessageRequest))],
) -> MessageObject:
    return await svc.messages.create(project, thread_id, body)


@router.get("")
async def list_messages(
    svc: Svc, project: Project, thread_id: str, page: Page, run_id: str | None = None
) -> ListResponse[MessageObject]:
    return await svc.messages.list(project, thread_id, page, run_id)


@router.get("/{message_id}")
async def get_message(svc: Svc, project: Project, thread_id: str, message_id: str) -> MessageObject:
    return await svc.messages.get(project, thread_id, message_id)


@router.post("/{message_id}")
async def modify_message(
    svc: Svc,
    project: Project,
    thread_id: str,
    message_id: str,
    body: Annotated[ModifyMessageRequest, Depends(json_body(ModifyMessageRequest))],
) -> MessageObject:
    return await svc.messages.modify(project, thread_id, message_id, body)


@router.delete("/{message_id}")
async def delete_message(
    svc: Svc, project: Project, thread_id: str, message_id: str
) -> DeletedResponse:
    return await svc.messages.delete(project, thread_id, message_id)
