"""PostgreSQL's chunk queries: full text (tsvector, GIN) and pgvector.

``retrieval.pg_index`` decides which to run and how to weigh them; see it for why the
keyword ranking goes in two stages and when the HNSW index is used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from pgvector.sqlalchemy import VECTOR

from assistd.store.database import Connection
from assistd.store.tables import chunks

Vector = npt.NDArray[np.float32]
Ranked = list[tuple[int, float]]

# The width the HNSW index of migration 0004 covers (the local embedder's).
HNSW_DIMENSIONS = 384

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


def _best(item: tuple[int, float]) -> tuple[float, int]:
    return -item[1], item[0]


async def term_frequencies(
    conn: Connection, vector_store_id: str, terms: Sequence[str], cap: int
) -> dict[str, int]:
    """Each term's query (``tsquery`` text; two words that stem alike are one) → how many
    of the store's chunks hold it, counted up to ``cap``. Terms that are only stop words
    are left out."""
    params = {"store": vector_store_id, "terms": list(terms), "cap": cap}
    found = (await conn.execute(_TERMS, params)).all()
    return {str(row.q): int(row.df) for row in found}


async def keyword_ranked(
    conn: Connection,
    vector_store_id: str,
    *,
    weights: dict[str, float],
    selective: set[str],
    file_ids: set[str] | None,
    pool: int,
    cap: int,
    limit: int,
) -> Ranked:
    """The best keyword matches: the ``pool`` chunks (in ``file_ids``) holding the most
    weight of the ``selective`` queries (up to ``cap`` each), ranked by that weight plus
    ``sum(weight * ts_rank)`` over every query of ``weights``."""
    result = await conn.execute(
        _RANKED,
        {
            "store": vector_store_id,
            "queries": list(weights),
            "weights": list(weights.values()),
            "selective": [q in selective for q in weights],
            "pool": pool,
            "cap": cap,
            "files": None if file_ids is None else sorted(file_ids),
            "limit": limit,
        },
    )
    return [(int(row.id), float(row.score)) for row in result]


async def term_hits(
    conn: Connection, queries: Sequence[str], ids: Sequence[int]
) -> dict[int, set[str]]:
    """Which of ``queries`` (tsquery text) each of the chunks ``ids`` holds."""
    held: dict[int, set[str]] = {}
    if not queries or not ids:
        return held
    result = await conn.execute(_HELD, {"queries": list(queries), "ids": list(ids)})
    for row in result:
        held.setdefault(int(row.id), set()).add(str(row.q))
    return held


def _distance(vector: Vector) -> sa.ColumnElement[float]:
    # <#> is the negative inner product.
    return chunks.c.embedding.op("<#>", return_type=sa.Float())(sa.literal(vector, VECTOR()))


async def inner_products(
    conn: Connection, vectors: Sequence[Vector], ids: Sequence[int]
) -> dict[int, list[float]]:
    """Each chunk's inner product with every vector (one value per vector, in order)."""
    found: dict[int, list[float]] = {}
    if not ids:
        return found
    # Computed in the database: the vectors' text form costs more to parse than this.
    for vector in vectors:
        result = await conn.execute(
            sa.select(chunks.c.id, _distance(vector)).where(chunks.c.id.in_(list(ids)))
        )
        for row in result:
            found.setdefault(int(row[0]), []).append(-float(row[1]))
    return found


async def nearest_approximate(
    conn: Connection, vector_store_id: str, vectors: Sequence[Vector], limit: int
) -> list[Ranked]:
    """The nearest chunks to each vector (of ``HNSW_DIMENSIONS``) through the HNSW index,
    which filters by store after it walks the graph: a list may come short."""
    await conn.execute(sa.text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
    await conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {max(100, 2 * limit)}"))
    found: list[Ranked] = []
    for vector in vectors:
        params = {"q": vector, "store": vector_store_id, "limit": limit}
        rows = (await conn.execute(_APPROXIMATE, params)).all()
        found.append(sorted(((int(r[0]), -float(r[1])) for r in rows), key=_best))
    return found


async def nearest_exact(
    conn: Connection,
    vector_store_id: str,
    vectors: Sequence[Vector],
    file_ids: set[str] | None,
    limit: int,
) -> list[Ranked]:
    """The nearest chunks (of ``file_ids``) to each vector, by an exact scan of the store."""
    found: list[Ranked] = []
    for vector in vectors:
        distance = _distance(vector)
        statement = (
            sa.select(chunks.c.id, distance.label("distance"))
            .where(chunks.c.vector_store_id == vector_store_id)
            .order_by(distance, chunks.c.id)
            .limit(limit)
        )
        if file_ids is not None:
            statement = statement.where(chunks.c.file_id.in_(sorted(file_ids)))
        result = await conn.execute(statement)
        found.append([(int(row.id), -float(row.distance)) for row in result])
    return found
