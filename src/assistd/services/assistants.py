"""Assistants: create, read, modify, list, delete."""

from __future__ import annotations

from typing import Any

from assistd.errors import not_found
from assistd.protocol.assistants import (
    AssistantFields,
    AssistantObject,
    CreateAssistantRequest,
    ModifyAssistantRequest,
)
from assistd.protocol.common import DeletedResponse, ListResponse, dump_response_format, dump_tools
from assistd.services.listing import list_response
from assistd.services.references import resolve_tool_resources
from assistd.store import assistants
from assistd.store.database import Database
from assistd.store.records import Assistant
from assistd.store.repository import PageQuery


def to_wire(assistant: Assistant) -> AssistantObject:
    return AssistantObject(
        id=assistant.id,
        created_at=assistant.created_at,
        name=assistant.name,
        description=assistant.description,
        model=assistant.model,
        instructions=assistant.instructions,
        tools=assistant.tools,
        tool_resources=assistant.tool_resources or {},
        metadata=assistant.metadata,
        temperature=assistant.temperature,
        top_p=assistant.top_p,
        response_format=assistant.response_format,
        reasoning_effort=assistant.reasoning_effort,
    )


def _columns(request: AssistantFields) -> dict[str, Any]:
    """Storage values for the fields the request gave (tool_resources handled apart)."""
    given = request.given()
    given.pop("tool_resources", None)
    if "tools" in given:
        given["tools"] = dump_tools(request.tools or [])
    if "response_format" in given:
        given["response_format"] = dump_response_format(request.response_format)
    return given


class AssistantService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, project: str, request: CreateAssistantRequest) -> AssistantObject:
        async with self.db.write() as conn:
            resources = await resolve_tool_resources(conn, project, request.tool_resources)
            fields: dict[str, Any] = {
                "name": None,
                "description": None,
                "instructions": None,
                "tools": [],
                "metadata": {},
                # OpenAI echoes its defaults rather than nulls for these three.
                "temperature": 1.0,
                "top_p": 1.0,
                "response_format": "auto",
                "reasoning_effort": None,
                **_columns(request),
                "tool_resources": resources,
            }
            assistant = await assistants.create(conn, project, **fields)
        return to_wire(assistant)

    async def get(self, project: str, assistant_id: str) -> AssistantObject:
        async with self.db.read() as conn:
            assistant = await assistants.get_for_project(conn, project, assistant_id)
        if assistant is None:
            raise not_found("assistant", assistant_id)
        return to_wire(assistant)

    async def modify(
        self, project: str, assistant_id: str, request: ModifyAssistantRequest
    ) -> AssistantObject:
        async with self.db.write() as conn:
            assistant = await assistants.get_for_project(conn, project, assistant_id)
            if assistant is None:
                raise not_found("assistant", assistant_id)
            changes = _columns(request)
            if request.tool_resources is not None:
                changes["tool_resources"] = await resolve_tool_resources(
                    conn, project, request.tool_resources, assistant.tool_resources
                )
            assistant = await assistants.patch(conn, assistant, **changes)
        return to_wire(assistant)

    async def list(self, project: str, query: PageQuery) -> ListResponse[AssistantObject]:
        async with self.db.read() as conn:
            page = await assistants.list_page(conn, project, query)
        return list_response(page, to_wire)

    async def delete(self, project: str, assistant_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            if not await assistants.delete(conn, project, assistant_id):
                raise not_found("assistant", assistant_id)
        return DeletedResponse(id=assistant_id, object="assistant.deleted")
