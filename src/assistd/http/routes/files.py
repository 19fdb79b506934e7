"""/v1/files"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from assistd.http.deps import FilePage, Project, Svc
from assistd.http.uploads import parse_upload
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.files import FileObject

router = APIRouter(prefix="/files", tags=["files"])


@router.post("")
async def upload_file(svc: Svc, project: Project, request: Request) -> FileObject:
    async with parse_upload(request, svc.settings.max_upload_bytes) as upload:
        return await svc.files.create(project, upload)


@router.get("")
async def list_files(
    svc: Svc, project: Project, page: FilePage, purpose: str | None = None
) -> ListResponse[FileObject]:
    return await svc.files.list(project, page, purpose)


@router.get("/{file_id}")
async def get_file(svc: Svc, project: Project, file_id: str) -> FileObject:
    return await svc.files.get(project, file_id)


@router.delete("/{file_id}")
async def delete_file(svc: Svc, project: Project, file_id: str) -> DeletedResponse:
    return await svc.files.delete(project, file_id)


@router.get("/{file_id}/content")
async def file_content(svc: Svc, project: Project, file_id: str) -> StreamingResponse:
    meta, chunks = await svc.files.content(project, file_id)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"content-length": str(meta.bytes)},
    )
