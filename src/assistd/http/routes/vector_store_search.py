"""/v1/vector_stores/{vector_store_id}/search"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistd.http.deps import Project, Svc, json_body
from assistd.protocol.vector_store_search import SearchResultsPage, VectorStoreSearchRequest

router = APIRouter(prefix="/vector_stores", tags=["vector_stores"])


@router.post("/{vector_store_id}/search")
async def search_vector_store(
    svc: Svc,
    project: Project,
    vector_store_id: str,
    body: Annotated[VectorStoreSearchRequest, Depends(json_body(VectorStoreSearchRequest))],
) -> SearchResultsPage:
    return await svc.vector_store_search.search(project, vector_store_id, body)
