"""Checks that ids a request refers to exist in the caller's project, and tool_resources."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistd import clock
from assistd.errors import InvalidRequestError
from assistd.protocol.common import ToolResources, VectorStoreHelper
from assistd.retrieval.chunking import resolve_chunking_strategy
from assistd.store import files, vector_stores
from assistd.store.database import Connection

# Stores the thread helper creates expire a week after their last use, as OpenAI's do.
THREAD_STORE_EXPIRY: dict[str, Any] = {"anchor": "last_active_at", "days": 7}


async def require_files(conn: Connection, project: str, refs: Sequence[tuple[str, str]]) -> None:
    """Fail with 400 naming the first ``(param, file_id)`` that is not a live file."""
    found = await files.get_many(conn, project, [file_id for _, file_id in refs])
    now = clock.now()
    for param, file_id in refs:
        file = found.get(file_id)
        if file is None or (file.expires_at is not None and file.expires_at <= now):
            raise InvalidRequestError(
                f"Invalid '{param}': no file found with id '{file_id}'.",
                param=param,
                code="invalid_value",
            )


async def require_vector_stores(
    conn: Connection, project: str, refs: Sequence[tuple[str, str]]
) -> None:
    """Fail with 400 naming the first ``(param, vector_store_id)`` not in the project."""
    found = await vector_stores.existing_ids(conn, project, [vs_id for _, vs_id in refs])
    for param, vs_id in refs:
        if vs_id not in found:
            raise InvalidRequestError(
                f"Invalid '{param}': no vector store found with id '{vs_id}'.",
                param=param,
                code="invalid_value",
            )


async def create_helper_store(
    conn: Connection,
    project: str,
    helper: VectorStoreHelper,
    *,
    param: str,
    expires_after: dict[str, Any] | None,
) -> str:
    """The store ``tool_resources.file_search.vector_stores`` asks for, with its files in
    progress. The ingestion worker finds them on its next poll (within about a second):
    this runs inside the caller's transaction, before anything could wake it."""
    file_ids = list(helper.file_ids)
    await require_files(
        conn, project, [(f"{param}.file_ids[{i}]", f) for i, f in enumerate(file_ids)]
    )
    strategy = resolve_chunking_strategy(
        helper.chunking_strategy, param=f"{param}.chunking_strategy"
    ).to_wire()
    now = clock.now()
    store = await vector_stores.create_unnamed(
        conn, project, metadata=helper.metadata, expires_after=expires_after, now=now
    )
    await vector_stores.add_pending_files(
        conn, project, store.id, list(dict.fromkeys(file_ids)), chunking_strategy=strategy, now=now
    )
    return store.id


async def resolve_tool_resources(
    conn: Connection,
    project: str,
    resources: ToolResources | None,
    current: dict[str, Any] | None = None,
    *,
    helper_expires_after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate ``resources`` and merge them over ``current`` (per tool, as modify does).

    ``helper_expires_after`` is the expiry policy of a store the ``vector_stores`` helper
    creates (threads give their stores one; assistants' stores do not expire).
    """
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
        vector_store_ids = list(search.vector_store_ids or [])
        await require_vector_stores(
            conn,
            project,
            [
                (f"tool_resources.file_search.vector_store_ids[{i}]", vs_id)
                for i, vs_id in enumerate(vector_store_ids)
            ],
        )
        if search.vector_stores:
            vector_store_ids = [
                await create_helper_store(
                    conn,
                    project,
                    search.vector_stores[0],
                    param="tool_resources.file_search.vector_stores[0]",
                    expires_after=helper_expires_after,
                )
            ]
        merged["file_search"] = {"vector_store_ids": vector_store_ids}
    return merged
