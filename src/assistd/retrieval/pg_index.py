"""The PostgreSQL ``ChunkIndex``: full-text search and pgvector, all in the database.

Keywords. PostgreSQL's own ranking (``ts_rank``, ``ts_rank_cd``) counts how often and how
close the query's words occur but has no inverse document frequency: "error" found five
times outranks "XK-4471" found once. We add it. Each query term's document frequency in
the store is counted first, capped at ``DF_CAP`` rows so a common word costs no more than a
rare one. Ranking then goes in two stages, because reading a chunk's tsvector (TOASTed:
several kB) is what costs: the GIN index alone finds the ``RANK_POOL`` chunks holding the
most IDF weight of the rarer terms, and only those are read to add
``sum(idf(term) * ts_rank(tsv, term))``, as BM25 would weigh how often each term occurs.

Vectors. pgvector's ``<#>`` (negative inner product; the vectors are unit length, so it is
the cosine). A store under ``HNSW_MIN_CHUNKS`` chunks, or searched for some files only, is
scanned exactly through the ``(vector_store_id, ...)`` index: its cost grows with the
store, not the table (about 15 ms per 10k chunks), and it never misses. A larger store of
384-dimensional vectors (the local embedder's) goes through the HNSW index of migration
0004, which needs a fixed width, hence one partial index for that width; pgvector 0.8's
iterative scan keeps walking the graph until enough rows of the store are found (about
5 ms at 100k chunks instead of 150), and an exact scan covers the case it comes short.
Other widths (upstream embedders) are always scanned exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assistd.retrieval.index import Vectors
from assistd.retrieval.search import (
    DF_CAP,
    HybridChunkIndex,
    KeywordResult,
    Ranked,
    idf,
    query_terms,
    stored_count,
)
from assistd.store import chunk_index_pg as pg
from assistd.store.chunk_index_pg import HNSW_DIMENSIONS
from assistd.store.database import Connection

RANK_POOL = 200  # chunks whose tsvectors are read to rank them
# Below HNSW_MIN_CHUNKS an exact scan of the store is about as fast (bench/retrieval.py)
# and never misses; the HNSW index covers vectors of HNSW_DIMENSIONS only.
HNSW_MIN_CHUNKS = 20_000


class PostgresChunkIndex(HybridChunkIndex):
    async def keyword(
        self,
        conn: Connection,
        vector_store_id: str,
        text: str,
        file_ids: set[str] | None,
        limit: int,
    ) -> KeywordResult:
        terms = query_terms(text)
        if not terms:
            return KeywordResult([], {})
        frequencies = await pg.term_frequencies(conn, vector_store_id, terms, DF_CAP)
        present = {q: df for q, df in frequencies.items() if df > 0}
        if not present:
            return KeywordResult([], {})
        size = await stored_count(conn, vector_store_id)
        rare = {q for q, df in present.items() if df < DF_CAP}
        rare = rare or set(sorted(present, key=lambda q: present[q])[:2])
        # The common terms left out of the ranking's first stage are left out of the
        # relevance too (see search.DF_CAP).
        weights = {q: idf(df, size) for q, df in frequencies.items() if q in rare or df == 0}
        ranked = await pg.keyword_ranked(
            conn,
            vector_store_id,
            weights={q: idf(df, size) for q, df in present.items()},
            selective=rare,
            file_ids=file_ids,
            pool=RANK_POOL,
            cap=DF_CAP,
            limit=limit,
        )
        return KeywordResult(ranked, weights, frozenset(rare))

    async def term_hits(
        self, conn: Connection, vector_store_id: str, terms: Sequence[str], ids: Sequence[int]
    ) -> dict[int, set[str]]:
        return await pg.term_hits(conn, terms, ids)

    async def similarities(
        self, conn: Connection, vector_store_id: str, vectors: Vectors, ids: Sequence[int]
    ) -> dict[int, Vectors]:
        found = await pg.inner_products(conn, list(vectors), ids)
        return {cid: np.asarray(values, dtype=np.float32) for cid, values in found.items()}

    async def dense(
        self,
        conn: Connection,
        vector_store_id: str,
        vectors: Vectors,
        file_ids: set[str] | None,
        limit: int,
    ) -> list[Ranked]:
        size = await stored_count(conn, vector_store_id)
        rows = list(vectors)
        if file_ids is None and vectors.shape[1] == HNSW_DIMENSIONS and size >= HNSW_MIN_CHUNKS:
            approximate = await pg.nearest_approximate(conn, vector_store_id, rows, limit)
            # The index filters after it walks the graph; an exact scan when it came short.
            if all(len(ranked) >= min(limit, size) for ranked in approximate):
                return approximate
        return await pg.nearest_exact(conn, vector_store_id, rows, file_ids, limit)
