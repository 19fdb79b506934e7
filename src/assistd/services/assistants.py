"""Assistants: create, read, modify, list, delete."""

from __future__ import annotations

from typing import Any

from assistd import clock, ids
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
from assistd.store import repos
from assistd.store.database import Database
from assistd.store.repository import PageQuery, Row


def to_wire(row: Row) -> AssistantObject:
    return AssistantObject(
        id=row["id"],
        created_at=row["created_at"],
        name=row["name"],
        description=row["description"],
        model=row["model"],
        instructions=row["instructions"],
        tools=row["tools"],
        tool_resources=row["tool_resources"] or {},
        metadata=row["metadata"],
        temperature=row["temperature"],
        top_p=row["top_p"],
        response_format=row["response_format"],
        reasoning_effort=row["reasoning_effort"],
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
            row: dict[str, Any] = {
                "id": ids.new_id("assistant"),
                "project": project,
                "created_at": clock.now(),
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
            row["sort_key"] = ids.sort_key_of(row["id"], "assistant")
            await repos.assistants.insert(conn, row)
        return to_wire(row)

    async def get(self, project: str, assistant_id: str) -> AssistantObject:
        async with self.db.read() as conn:
            row = await repos.assistants.get(conn, project, assistant_id)
        if row is None:
            raise not_found("assistant", assistant_id)
        return to_wire(row)

    async def modify(
        self, project: str, assistant_id: str, request: ModifyAssistantRequest
    ) -> AssistantObject:
        async with self.db.write() as conn:
            row = await repos.assistants.get(conn, project, assistant_id)
            if row is None:
                raise not_found("assistant", assistant_id)
            changes = _columns(request)
            if request.tool_resources is not None:
                changes["tool_resources"] = await resolve_tool_resources(
                    conn, project, request.tool_resources, row["tool_resources"]
                )
            await repos.assistants.update(conn, project, assistant_id, changes)
        return to_wire({**row, **changes})

    async def list(self, project: str, query: PageQuery) -> ListResponse[AssistantObject]:
        async with self.db.read() as conn:
            page = await repos.assistants.page(
                conn, [repos.assistants.table.c.project == project], query
            )
        return list_response(page, to_wire)

    async def delete(self, project: str, assistant_id: str) -> DeletedResponse:
        async with self.db.write() as conn:
            if not await repos.assistants.delete(conn, project, assistant_id):
                raise not_found("assistant", assistant_id)
        return DeletedResponse(id=assistant_id, object="assistant.deleted")
