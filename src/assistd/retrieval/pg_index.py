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
import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR
from sqlalchemy.ext.asyncio import AsyncConnection

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
from assistd.store.tables import chunks as chunks_table

RANK_POOL = 200  # chunks whose tsvectors are read to rank them
# The HNSW index of migration 0004 covers this width; below HNSW_MIN_CHUNKS an exact scan
# of the store is about as fast (bench/retrieval.py) and never misses.
HNSW_DIMENSIONS = 384
HNSW_MIN_CHUNKS = 20_000


def _best(item: tuple[int, float]) -> tuple[float, int]:
    return -item[1], item[0]


_TERMS = sa.text(
    "SELECT t.q::text AS q, "
    "(SELECT count(*) FROM (SELECT 1 FROM chunks AS c WHERE c.vector_store_id = :store "
    "AND c.tsv @@ t.q LIMIT :cap) AS hits) AS df "
    "FROM (SELECT websearch_to_tsquery('english', term) AS q "
    "FROM unnest(CAST(:terms AS text[])) AS term) AS t "
    "WHERE numnode(t.q) > 0"
)
_APPROXIMATE = sa.text(
    "SELECT id, embedding::vector(384) <#> CAST(:q AS vector(384)) AS distance "
    "FROM chunks WHERE vector_dims(embedding) = 384 AND vector_store_id = :store "
    "ORDER BY embedding::vector(384) <#> CAST(:q AS vector(384)) LIMIT :limit"
).bindparams(sa.bindparam("q", type_=VECTOR()))
_HELD = sa.text(
    "SELECT c.id, t.q FROM chunks AS c "
    "JOIN unnest(CAST(:queries AS text[])) AS t(q) ON c.tsv @@ CAST(t.q AS tsquery) "
    "WHERE c.id = ANY(CAST(:ids AS bigint[]))"
)
_RANKED = sa.text(
    "WITH terms AS (SELECT CAST(q AS tsquery) AS q, w, s "
    "FROM unnest(CAST(:queries AS text[]), CAST(:weights AS float8[]), "
    "CAST(:selective AS boolean[])) AS t(q, w, s)), "
    # Stage 1, from the GIN index alone: the chunks holding the most weight of rare terms.
    "covered AS (SELECT hit.id, sum(terms.w) AS coverage FROM terms, LATERAL "
    "(SELECT c.id FROM chunks AS c WHERE c.tsv @@ terms.q AND c.vector_store_id = :store "
    "AND (CAST(:files AS text[]) IS NULL OR c.file_id = ANY(CAST(:files AS text[]))) "
    "LIMIT :cap) AS hit "
    "WHERE terms.s GROUP BY hit.id ORDER BY coverage DESC, hit.id LIMIT :pool) "
    # Stage 2, reading their tsvectors: how often and how densely every term occurs.
    "SELECT covered.id, covered.coverage "
    "+ (SELECT sum(terms.w * ts_rank(c.tsv, terms.q, 1)) FROM terms) AS score "
    "FROM covered JOIN chunks AS c ON c.id = covered.id "
    "ORDER BY score DESC, covered.id LIMIT :limit"
)


class PostgresChunkIndex(HybridChunkIndex):
    async def keyword(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        text: str,
        file_ids: set[str] | None,
        limit: int,
    ) -> KeywordResult:
        terms = query_terms(text)
        if not terms:
            return KeywordResult([], {})
        params = {"store": vector_store_id, "terms": terms, "cap": DF_CAP}
        found = (await conn.execute(_TERMS, params)).all()
        # Two words that stem alike are one term.
        frequencies = {str(row.q): int(row.df) for row in found}
        present = {q: df for q, df in frequencies.items() if df > 0}
        if not present:
            return KeywordResult([], {})
        size = await stored_count(conn, vector_store_id)
        rare = {q for q, df in present.items() if df < DF_CAP}
        rare = rare or set(sorted(present, key=lambda q: present[q])[:2])
        # The common terms left out of the ranking's first stage are left out of the
        # relevance too (see search.DF_CAP).
        weights = {q: idf(df, size) for q, df in frequencies.items() if q in rare or df == 0}
        result = await conn.execute(
            _RANKED,
            {
                "store": vector_store_id,
                "queries": list(present),
                "weights": [idf(df, size) for df in present.values()],
                "selective": [q in rare for q in present],
                "pool": RANK_POOL,
                "cap": DF_CAP,
                "files": None if file_ids is None else sorted(file_ids),
                "limit": limit,
            },
        )
        ranked = [(int(row.id), float(row.score)) for row in result]
        return KeywordResult(ranked, weights, frozenset(rare))

    async def term_hits(
        self, conn: AsyncConnection, vector_store_id: str, terms: Sequence[str], ids: Sequence[int]
    ) -> dict[int, set[str]]:
        held: dict[int, set[str]] = {}
        if not terms or not ids:
            return held
        result = await conn.execute(_HELD, {"queries": list(terms), "ids": list(ids)})
        for row in result:
            held.setdefault(int(row.id), set()).add(str(row.q))
        return held

    async def similarities(
        self, conn: AsyncConnection, vector_store_id: str, vectors: Vectors, ids: Sequence[int]
    ) -> dict[int, Vectors]:
        found: dict[int, list[float]] = {}
        if not ids:
            return {}
        # Computed in the database: the vectors' text form costs more to parse than this.
        for vector in vectors:
            distance = chunks_table.c.embedding.op("<#>", return_type=sa.Float())(
                sa.literal(vector, VECTOR())
            )
            result = await conn.execute(
                sa.select(chunks_table.c.id, distance).where(chunks_table.c.id.in_(list(ids)))
            )
            for row in result:
                found.setdefault(int(row[0]), []).append(-float(row[1]))
        return {cid: np.asarray(values, dtype=np.float32) for cid, values in found.items()}

    async def dense(
        self,
        conn: AsyncConnection,
        vector_store_id: str,
        vectors: Vectors,
        file_ids: set[str] | None,
        limit: int,
    ) -> list[Ranked]:
        size = await stored_count(conn, vector_store_id)
        if file_ids is None and vectors.shape[1] == HNSW_DIMENSIONS and size >= HNSW_MIN_CHUNKS:
            await conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            await conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {max(100, 2 * limit)}"))
            approximate: list[Ranked] = []
            for vector in vectors:
                params = {"q": vector, "store": vector_store_id, "limit": limit}
                rows = (await conn.execute(_APPROXIMATE, params)).all()
                approximate.append(sorted(((int(r[0]), -float(r[1])) for r in rows), key=_best))
            # The index filters after it walks the graph; an exact scan when it came short.
            if all(len(ranked) >= min(limit, size) for ranked in approximate):
                return approximate
        found: list[Ranked] = []
        for vector in vectors:
            query = sa.literal(vector, VECTOR())
            distance = chunks_table.c.embedding.op("<#>", return_type=sa.Float())(query)
            statement = (
                sa.select(chunks_table.c.id, distance.label("distance"))
                .where(chunks_table.c.vector_store_id == vector_store_id)
                .order_by(distance, chunks_table.c.id)
                .limit(limit)
            )
            if file_ids is not None:
                statement = statement.where(chunks_table.c.file_id.in_(sorted(file_ids)))
            result = await conn.execute(statement)
            # <#> is the negative inner product.
            found.append([(int(row.id), -float(row.distance)) for row in result])
        return found
