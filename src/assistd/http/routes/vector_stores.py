"""/v1/vector_stores"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistd.http.deps import Page, Project, Svc, json_body
from assistd.protocol.common import DeletedResponse, ListResponse
from assistd.protocol.vector_stores import (
    CreateVectorStoreRequest,
    ModifyVectorStoreRequest,
    VectorStoreObject,
)

router = APIRouter(prefix="/vector_stores", tags=["vector_stores"])


@router.post("")
async def create_vector_store(
    svc: Svc,
    project: Project,
    body: Annotated[CreateVectorStoreRequest, Depends(json_body(CreateVectorStoreRequest))],
) -> VectorStoreObject:
    return await svc.vector_stores.create(project, body)


@router.get("")
async def list_vector_stores(
    svc: Svc, project: Project, page: Page
) -> ListResponse[VectorStoreObject]:
    return await svc.vector_stores.list(project, page)


@router.get("/{vector_store_id}")
async def get_vector_store(svc: Svc, project: Project, vector_store_id: str) -> VectorStoreObject:
    return await svc.vector_stores.get(project, vector_store_id)


@router.post("/{vector_store_id}")
async def modify_vector_store(
    svc: Svc,
    project: Project,
    vector_store_id: str,
    body: Annotated[ModifyVectorStoreRequest, Depends(json_body(ModifyVectorStoreRequest))],
) -> VectorStoreObject:
    return await svc.vector_stores.modify(project, vector_store_id, body)


@router.delete("/{vector_store_id}")
async def delete_vector_store(svc: Svc, project: Project, vector_store_id: str) -> DeletedResponse:
    return await svc.vector_stores.delete(project, vector_store_id)
