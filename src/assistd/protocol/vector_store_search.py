"""Vector store search wire types (``POST /v1/vector_stores/{id}/search``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictBool, StrictStr

from assistd.protocol.common import RequestModel, WireModel

Ranker = Literal["none", "auto", "default-2024-11-15"]
MAX_RESULTS = 50
# Not in the spec: each query string costs an embedding and two searches per store.
MAX_QUERIES = 20


class RankingOptions(RequestModel):
    ranker: Ranker | None = None
    score_threshold: float | None = Field(default=None, ge=0, le=1)


class VectorStoreSearchRequest(RequestModel):
    """``filters`` stays a plain object here: ``assistd.retrieval.filters`` checks its
    recursive shape and names the offending part (``filters.filters[1].value``)."""

    query: StrictStr | list[StrictStr]
    rewrite_query: StrictBool | None = None
    max_num_results: int | None = Field(default=None, ge=1, le=MAX_RESULTS)
    filters: dict[str, Any] | None = None
    ranking_options: RankingOptions | None = None


class SearchResultContent(WireModel):
    type: Literal["text"] = "text"
    text: str


class SearchResultItem(WireModel):
    file_id: str
    filename: str
    score: float
    attributes: dict[str, str | bool | int | float] | None
    content: list[SearchResultContent]


class SearchResultsPage(WireModel):
    object: Literal["vector_store.search_results.page"] = "vector_store.search_results.page"
    search_query: list[str]
    data: list[SearchResultItem]
    has_more: bool = False
    next_page: str | None = None
