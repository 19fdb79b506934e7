"""SQLite's chunk queries: the FTS5 index (``chunks_fts``) and the stored vectors.

``retrieval.sqlite_index`` ranks with these; the MATCH expressions are built here, since
FTS5's syntax is the database's.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import sqlalchemy as sa

from assistd.store.database import Connection
from assistd.store.tables import chunks

_ROWIDS = sa.text("SELECT rowid FROM chunks_fts WHERE chunks_fts MATCH :match LIMIT :cap")
_HELD = sa.text(
    "SELECT j.value FROM json_each(:ids) AS j CROSS JOIN chunks_fts "
    "WHERE chunks_fts.rowid = j.value AND chunks_fts MATCH :match"
)
_KEYWORD = sa.text(
    "SELECT c.id, -bm25(chunks_fts, 1.0, 0.0) AS score "
    "FROM chunks_fts JOIN chunks AS c ON c.id = chunks_fts.rowid "
    "WHERE chunks_fts MATCH :match "
    "AND (:files IS NULL OR c.file_id IN (SELECT value FROM json_each(:files))) "
    "ORDER BY bm25(chunks_fts, 1.0, 0.0) LIMIT :limit"
)


def fts_query(vector_store_id: str, terms: Sequence[str]) -> str:
    """An FTS5 MATCH expression: any of ``terms`` (from ``query_terms``), within one store.

    Each term is a quoted string, so nothing the user typed is read as FTS5 syntax; a
    quoted "XK-4471" is the phrase of its tokens, which is how the text was indexed.
    """
    phrases = " OR ".join(_phrase(term) for term in terms)
    return f'vector_store_id : "{vector_store_id}" AND text : ({phrases})'


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


async def holders(conn: Connection, vector_store_id: str, term: str, cap: int) -> frozenset[int]:
    """The store's chunks holding ``term``, up to ``cap`` of them."""
    params = {"match": fts_query(vector_store_id, [term]), "cap": cap}
    return frozenset(int(row[0]) for row in await conn.execute(_ROWIDS, params))


async def keyword_ranked(
    conn: Connection,
    vector_store_id: str,
    terms: Sequence[str],
    file_ids: set[str] | None,
    limit: int,
) -> list[tuple[int, float]]:
    """The store's chunks holding any of ``terms`` (in ``file_ids``), best BM25 first."""
    files = None if file_ids is None else json.dumps(sorted(file_ids))
    match = fts_query(vector_store_id, terms)
    result = await conn.execute(_KEYWORD, {"match": match, "files": files, "limit": limit})
    return [(int(row.id), float(row.score)) for row in result]


async def term_hits(
    conn: Connection, terms: Sequence[str], ids: Sequence[int]
) -> dict[int, set[str]]:
    """Which of ``terms`` each of the chunks ``ids`` holds."""
    held: dict[int, set[str]] = {}
    chosen = json.dumps(sorted(ids))
    for term in terms:
        # Each chosen chunk looked up in the term's doclist (CROSS JOIN keeps the chosen
        # ids outermost); the store is implied by the ids.
        params = {"match": f"text : ({_phrase(term)})", "ids": chosen}
        for row in await conn.execute(_HELD, params):
            held.setdefault(int(row[0]), set()).add(term)
    return held


async def embeddings(conn: Connection, vector_store_id: str) -> list[tuple[int, str, bytes]]:
    """``(chunk id, file id, packed float32 vector)`` of every chunk of a store, by id."""
    result = await conn.execute(
        sa.select(chunks.c.id, chunks.c.file_id, chunks.c.embedding)
        .where(chunks.c.vector_store_id == vector_store_id)
        .order_by(chunks.c.id)
    )
    return [(row[0], row[1], row[2]) for row in result]
