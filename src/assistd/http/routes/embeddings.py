"""/v1/embeddings"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from assistd.http.deps import Project, Svc, json_body
from assistd.protocol.embeddings import CreateEmbeddingRequest, EmbeddingList

router = APIRouter(prefix="/embeddings", tags=["embeddings"])


@router.post("")
async def create_embeddings(
    svc: Svc,
    project: Project,
    body: Annotated[CreateEmbeddingRequest, Depends(json_body(CreateEmbeddingRequest))],
) -> EmbeddingList:
    return await svc.embeddings.create(body)
