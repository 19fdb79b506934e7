"""Message ``attachments`` for file_search: the thread's own vector store.

OpenAI's attachments are helpers that add files to the thread's ``tool_resources``: a file
attached for ``file_search`` goes into the thread's vector store, made on first use (with
the 7-day expiry after last activity that thread stores have) and extended afterwards. The
ingestion worker picks the new files up on its next poll; a run waits for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from assistd import clock
from assistd.protocol.messages import Attachment
from assistd.retrieval.chunking import AUTO_CHUNKING_STRATEGY
from assistd.services.references import THREAD_STORE_EXPIRY
from assistd.services.vector_stores import FileEntry, attach_files
from assistd.store import threads, vector_stores
from assistd.store.database import Connection


def file_search_files(attachments: Sequence[Attachment] | None) -> list[str]:
    """The attached file ids meant for file_search, each once, in order."""
    ids = [a.file_id for a in attachments or [] if any(t.type == "file_search" for t in a.tools)]
    return list(dict.fromkeys(ids))


async def add_to_thread_store(
    conn: Connection, project: str, thread_id: str, file_ids: Sequence[str]
) -> None:
    """Put ``file_ids`` (already checked) into the thread's vector store, making it if the
    thread has none. Files the store already holds are left as they are."""
    if not file_ids:
        return
    thread = await threads.get_for_project(conn, project, thread_id)
    if thread is None:
        return
    resources: dict[str, Any] = dict(thread.tool_resources or {})
    search: dict[str, Any] = dict(resources.get("file_search") or {})
    store_ids = list(search.get("vector_store_ids") or [])
    if store_ids:
        store_id = str(store_ids[0])
        have = await vector_stores.present_file_ids(conn, store_id, file_ids)
        file_ids = [f for f in file_ids if f not in have]
    else:
        store = await vector_stores.create_unnamed(
            conn, project, metadata={}, expires_after=THREAD_STORE_EXPIRY, now=clock.now()
        )
        store_id = store.id
        search["vector_store_ids"] = [store_id]
        resources["file_search"] = search
        await threads.patch(conn, thread, tool_resources=resources)
    strategy = AUTO_CHUNKING_STRATEGY.to_wire()
    entries = [FileEntry(f, strategy, {}) for f in file_ids]
    # No file is replaced (present ones were skipped), so no chunks need removing.
    await attach_files(conn, project, store_id, entries, chunk_index=None)
