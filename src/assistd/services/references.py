"""Checks that ids a request refers to exist in the caller's project, and tool_resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from assistd import clock
from assistd.errors import InvalidRequestError
from assistd.protocol.common import ToolResources
from assistd.store import repos


async def require_files(
    conn: AsyncConnection, project: str, refs: Sequence[tuple[str, str]]
) -> None:
    """Fail with 400 naming the first ``(param, file_id)`` that is not a live file."""
    found = await repos.files.get_many(conn, project, [file_id for _, file_id in refs])
    now = clock.now()
    for param, file_id in refs:
        row = found.get(file_id)
        if row is None or (row["expires_at"] is not None and row["expires_at"] <= now):
            raise InvalidRequestError(
                f"Invalid '{param}': no file found with id '{file_id}'.",
                param=param,
                code="invalid_value",
            )


def _vector_stores_unavailable(param: str, value: str) -> InvalidRequestError:
    # Vector stores arrive with the file-search issue; until then none can exist, and saying
    # so is better than storing a reference that silently resolves to nothing.
    return InvalidRequestError(
        f"Invalid '{param}': no vector store found with id '{value}'.",
        param=param,
        code="invalid_value",
    )


async def resolve_tool_resources(
    conn: AsyncConnection,
    project: str,
    resources: ToolResources | None,
    current: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate ``resources`` and merge them over ``current`` (per tool, as modify does)."""
    merged: dict[str, Any] = dict(current or {})
    if resources is None:
        return merged
    if resources.code_interpreter is not None:
        file_ids = list(resources.code_interpreter.file_ids)
        await require_files(
            conn,
            project,
            [(f"tool_resources.code_interpreter.file_ids[{i}]", f) for i, f in enumerate(file_ids)],
        )
        merged["code_interpreter"] = {"file_ids": file_ids}
    search = resources.file_search
    if search is not None:
        if search.vector_store_ids is not None and search.vector_stores is not None:
            raise InvalidRequestError(
                "Only one of 'vector_store_ids' or 'vector_stores' may be given.",
                param="tool_resources.file_search",
            )
        for i, vs_id in enumerate(search.vector_store_ids or []):
            raise _vector_stores_unavailable(
                f"tool_resources.file_search.vector_store_ids[{i}]", vs_id
            )
        if search.vector_stores:
            raise InvalidRequestError(
                "Creating vector stores through 'tool_resources.file_search.vector_stores' "
                "is not supported by this server yet.",
                param="tool_resources.file_search.vector_stores",
                code="unsupported_value",
            )
        merged["file_search"] = {"vector_store_ids": list(search.vector_store_ids or [])}
    return merged
