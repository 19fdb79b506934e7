"""/v1/vector_stores/{vector_store_id}/files[/...] and /file_batches[/...]"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from assistd.http.deps import Page, Project, Svc, json_body
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.vector_stores import (
    CreateFileBatchRequest,
    CreateVectorStoreFileRequest,
    FileStatus,
    UpdateVectorStoreFileRequest,
    VectorStoreFileBatchObject,
    VectorStoreFileContentPage,
    VectorStoreFileObject,
)

router = APIRouter(prefix="/vector_stores/{vector_store_id}", tags=["vector_stores"])

# `filter` on the wire; named apart from the builtin here.
StatusFilter = Annotated[FileStatus | None, Query(alias="filter")]


def _poll_hint(svc: Svc, response: Response, in_progress: bool) -> None:
    """The SDK's poll helpers wait this long between requests for an unfinished object."""
    if in_progress:
        response.headers["openai-poll-after-ms"] = str(svc.settings.poll_after_ms)


@router.post("/files")
async def create_vector_store_file(
    svc: Svc,
    project: Project,
    vector_store_id: str,
    body: Annotated[CreateVectorStoreFileRequest, Depends(json_body(CreateVectorStoreFileRequest))],
) -> VectorStoreFileObject:
    return await svc.vector_store_files.create(project, vector_store_id, body)


@router.get("/files")
async def list_vector_store_files(
    svc: Svc, project: Project, vector_store_id: str, page: Page, status: StatusFilter = None
) -> ListResponse[VectorStoreFileObject]:
    return await svc.vector_store_files.list(project, vector_store_id, page, status)


@router.get("/files/{file_id}")
async def get_vector_store_file(
    svc: Svc, project: Project, response: Response, vector_store_id: str, file_id: str
) -> VectorStoreFileObject:
    found = await svc.vector_store_files.get(project, vector_store_id, file_id)
    _poll_hint(svc, response, found.status == "in_progress")
    return found


@router.post("/files/{file_id}")
async def update_vector_store_file(
    svc: Svc,
    project: Project,
    vector_store_id: str,
    file_id: str,
    body: Annotated[UpdateVectorStoreFileRequest, Depends(json_body(UpdateVectorStoreFileRequest))],
) -> VectorStoreFileObject:
    return await svc.vector_store_files.modify(project, vector_store_id, file_id, body)


@router.delete("/files/{file_id}")
async def delete_vector_store_file(
    svc: Svc, project: Project, vector_store_id: str, file_id: str
) -> DeletedResponse:
    return await svc.vector_store_files.delete(project, vector_store_id, file_id)


@router.get("/files/{file_id}/content")
async def vector_store_file_content(
    svc: Svc, project: Project, vector_store_id: str, file_id: str
) -> VectorStoreFileContentPage:
    return await svc.vector_store_files.content(project, vector_store_id, file_id)


@router.post("/file_batches")
async def create_file_batch(
    svc: Svc,
    project: Project,
    vector_store_id: str,
    body: Annotated[CreateFileBatchRequest, Depends(json_body(CreateFileBatchRequest))],
) -> VectorStoreFileBatchObject:
    return await svc.vector_store_files.create_batch(project, vector_store_id, body)


@router.get("/file_batches/{batch_id}")
async def get_file_batch(
    svc: Svc, project: Project, response: Response, vector_store_id: str, batch_id: str
) -> VectorStoreFileBatchObject:
    batch = await svc.vector_store_files.get_batch(project, vector_store_id, batch_id)
    _poll_hint(svc, response, batch.file_counts.in_progress > 0)
    return batch


@router.post("/file_batches/{batch_id}/cancel")
async def cancel_file_batch(
    svc: Svc, project: Project, vector_store_id: str, batch_id: str
) -> VectorStoreFileBatchObject:
    return await svc.vector_store_files.cancel_batch(project, vector_store_id, batch_id)


@router.get("/file_batches/{batch_id}/files")
async def list_file_batch_files(
    svc: Svc,
    project: Project,
    vector_store_id: str,
    batch_id: str,
    page: Page,
    status: StatusFilter = None,
) -> ListResponse[VectorStoreFileObject]:
    return await svc.vector_store_files.list_batch_files(
        project, vector_store_id, batch_id, page, status
    )
