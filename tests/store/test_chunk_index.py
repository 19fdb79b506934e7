"""The chunk index on each database: add, delete, keyword and vector search, fusion.

Vectors here are synthetic (one direction per topic) so each test controls what the dense
side finds; the API tests embed real documents with the real model.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import numpy as np
import pytest

from assistd.config import Settings
from assistd.retrieval.factory import build_chunk_index
from assistd.retrieval.index import ChunkInput, SearchHit, SearchQuery, Vectors
from assistd.retrieval.search import HybridChunkIndex
from assistd.store.database import Database
from assistd.store.tables import vector_stores
from tests.conftest import _postgres_database, make_settings

DIM = 16
Scenario = Callable[[Database, HybridChunkIndex], Coroutine[Any, Any, None]]


def direction(*axes: int) -> Vectors:
    vector = np.zeros(DIM, dtype=np.float32)
    for axis in axes:
        vector[axis] = 1.0
    return (vector / np.linalg.norm(vector)).reshape(1, DIM)


def run(backend: Settings, scenario: Scenario) -> None:
    async def main() -> None:
        db = Database(backend.resolved_database_url)
        try:
            await db.migrate()
            index = build_chunk_index(db.dialect)
            assert isinstance(index, HybridChunkIndex)
            await scenario(db, index)
        finally:
            await db.dispose()

    asyncio.run(main())


async def new_store(db: Database) -> str:
    store_id = "vs_" + secrets.token_hex(12)
    async with db.write() as conn:
        await conn.execute(
            vector_stores.insert().values(
                id=store_id, sort_key=0, project="p", created_at=0, metadata={}
            )
        )
    return store_id


async def add(
    db: Database,
    index: HybridChunkIndex,
    store: str,
    file_id: str,
    items: list[tuple[str, Vectors]],
) -> None:
    chunks = [ChunkInput(seq, text, len(text.split())) for seq, (text, _) in enumerate(items)]
    vectors = np.vstack([vector for _, vector in items])
    async with db.write() as conn:
        await index.add(
            conn, vector_store_id=store, file_id=file_id, chunks=chunks, vectors=vectors
        )


async def search(
    db: Database,
    index: HybridChunkIndex,
    stores: list[str],
    text: str,
    vector: Vectors,
    **kwargs: Any,
) -> list[SearchHit]:
    kwargs.setdefault("limit", 10)
    async with db.read() as conn:
        return await index.search(
            conn, SearchQuery(vector_store_ids=stores, texts=[text], vectors=vector, **kwargs)
        )


async def corpus(db: Database, index: HybridChunkIndex) -> str:
    store = await new_store(db)
    await add(db, index, store, "file-cats", [
        ("Cats purr when they are content and sleep most of the day.", direction(0)),
        ("A kitten needs several small meals a day.", direction(0, 1)),
    ])  # fmt: skip
    await add(db, index, store, "file-tax", [
        ("Quarterly tax filings are due on the fifteenth.", direction(2)),
        ("Error code XK-4471 means the filing was rejected.", direction(3)),
    ])  # fmt: skip
    await add(db, index, store, "file-rust", [
        ("Rust's borrow checker rejects two mutable references.", direction(4)),
    ])  # fmt: skip
    return store


def test_dense_finds_the_nearest_chunk(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        hits = await search(db, index, [store], "feline naps", direction(0))
        assert hits[0].file_id == "file-cats"
        assert hits[0].seq == 0
        assert hits[0].text.startswith("Cats purr")
        assert 0 < hits[0].score <= 1
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)

    run(backend, scenario)


def test_keyword_finds_a_rare_identifier(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        # The vector points at cats; the identifier is only in the tax file.
        hits = await search(db, index, [store], "what does XK-4471 mean?", direction(5))
        assert (hits[0].file_id, hits[0].seq) == ("file-tax", 1)
        async with db.read() as conn:
            keyword = await index.keyword(conn, store, "XK-4471", None, 10)
        assert len(keyword.ranked) == 1

    run(backend, scenario)


def test_stemming_matches_other_forms(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        async with db.read() as conn:
            found = await index.keyword(conn, store, "rejecting references", None, 10)
        assert found.ranked
        rows = await _rows(db, index, [cid for cid, _ in found.ranked])
        assert rows[0] == ("file-rust", 0)

    run(backend, scenario)


def test_relevance_blends_the_cosine_and_the_terms_held(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        hits = await search(db, index, [store], "kitten meals", direction(0, 1))
        assert (hits[0].file_id, hits[0].seq) == ("file-cats", 1)
        assert hits[0].score == pytest.approx(1.0)  # cosine 1, every term held
        hits = await search(db, index, [store], "zzz", direction(4))
        assert hits[0].file_id == "file-rust"
        assert hits[0].score == pytest.approx(index.dense_weight)  # cosine 1, no term
        # Half the query's (equally rare) terms held, orthogonal vector.
        hits = await search(db, index, [store], "borrow kitten", direction(5))
        assert {h.text for h in hits[:2]} == {
            "A kitten needs several small meals a day.",
            "Rust's borrow checker rejects two mutable references.",
        }
        assert hits[0].score == pytest.approx((1 - index.dense_weight) / 2)

    run(backend, scenario)


def test_without_the_ranker_scores_are_fused_ranks(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        hits = await search(db, index, [store], "kitten meals", direction(0, 1), ranker="none")
        assert (hits[0].file_id, hits[0].seq) == ("file-cats", 1)
        assert hits[0].score == pytest.approx(1.0)  # first in both lists
        hits = await search(db, index, [store], "zzz", direction(4), ranker="none")
        assert hits[0].file_id == "file-rust"
        assert hits[0].score == pytest.approx(0.5)  # first in one list of two

    run(backend, scenario)


def test_limit_threshold_and_file_restriction(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        assert len(await search(db, index, [store], "cats", direction(0), limit=2)) == 2
        cut = await search(db, index, [store], "cats", direction(0), score_threshold=0.6)
        assert cut
        assert all(hit.score >= 0.6 for hit in cut)
        assert len(cut) < len(await search(db, index, [store], "cats", direction(0)))
        only = await search(
            db, index, [store], "cats tax", direction(0), file_ids={store: {"file-tax"}}
        )
        assert {hit.file_id for hit in only} == {"file-tax"}
        assert await search(db, index, [store], "cats", direction(0), file_ids={}) == []

    run(backend, scenario)


def test_stores_are_searched_apart_and_together(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        first = await corpus(db, index)
        second = await new_store(db)
        await add(db, index, second, "file-other", [("Cats in the other store.", direction(0))])
        hits = await search(db, index, [first], "cats", direction(0))
        assert "file-other" not in {hit.file_id for hit in hits}
        both = await search(db, index, [first, second], "cats", direction(0))
        assert {hit.vector_store_id for hit in both} == {first, second}

    run(backend, scenario)


def test_add_and_delete_show_in_the_next_search(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        assert (await search(db, index, [store], "tax", direction(2)))[0].file_id == "file-tax"
        async with db.write() as conn:
            removed = await index.delete(conn, vector_store_id=store, file_id="file-tax")
        assert removed == 2
        hits = await search(db, index, [store], "tax XK-4471", direction(2))
        assert "file-tax" not in {hit.file_id for hit in hits}
        # Added again (a re-ingestion replaces, never duplicates).
        for _ in range(2):
            await add(db, index, store, "file-tax", [("New tax rules.", direction(2))])
        hits = await search(db, index, [store], "tax", direction(2))
        assert [(h.file_id, h.text) for h in hits if h.file_id == "file-tax"] == [
            ("file-tax", "New tax rules.")
        ]
        async with db.write() as conn:
            assert await index.delete(conn, vector_store_id=store) == 4
        assert await search(db, index, [store], "cats tax", direction(0)) == []

    run(backend, scenario)


def test_a_search_inside_a_later_snapshot_sees_new_chunks(backend: Settings) -> None:
    """SQLite caches a store's vectors: a write must never leave a stale matrix behind."""

    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        await search(db, index, [store], "x", direction(6))  # loads the matrix
        await add(db, index, store, "file-new", [("Unrelated words.", direction(6))])
        hits = await search(db, index, [store], "x", direction(6))
        assert hits[0].file_id == "file-new"

    run(backend, scenario)


def test_deleting_the_store_row_cascades(backend: Settings) -> None:
    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await corpus(db, index)
        async with db.write() as conn:
            await conn.execute(vector_stores.delete().where(vector_stores.c.id == store))
            assert await index.delete(conn, vector_store_id=store) == 0

    run(backend, scenario)


async def _rows(db: Database, index: HybridChunkIndex, ids: list[int]) -> list[tuple[str, int]]:
    async with db.read() as conn:
        rows = await index.fetch(conn, ids)
    return [(rows[cid].file_id, rows[cid].seq) for cid in ids]


@pytest.fixture(scope="module")
def postgres_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A PostgreSQL store alone: the HNSW index exists only there."""
    gen = _postgres_database()
    url = next(gen)
    try:
        yield make_settings(tmp_path_factory.mktemp("hnsw"), database_url=url)
    finally:
        gen.close()


def test_big_stores_of_384_dimensions_use_the_hnsw_index(
    postgres_only: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The approximate path finds what the exact scan finds."""
    backend = postgres_only
    from assistd.retrieval import pg_index

    rng = np.random.default_rng(3)
    vectors = rng.standard_normal((300, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)

    async def scenario(db: Database, index: HybridChunkIndex) -> None:
        store = await new_store(db)
        chunks = [ChunkInput(i, f"chunk {i}", 2) for i in range(len(vectors))]
        async with db.write() as conn:
            await index.add(
                conn, vector_store_id=store, file_id="f", chunks=chunks, vectors=vectors
            )
        queries = vectors[:5] + 0.05 * rng.standard_normal((5, 384)).astype(np.float32)
        async with db.read() as conn:
            exact = await index.dense(conn, store, queries, None, 10)
        monkeypatch.setattr(pg_index, "HNSW_MIN_CHUNKS", 1)
        async with db.read() as conn:
            approximate = await index.dense(conn, store, queries, None, 10)
            # The query's shape can use the partial index (a tiny table would be scanned).
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            zero = "[" + ",".join(["0"] * 384) + "]"
            plan = await conn.exec_driver_sql(
                "EXPLAIN SELECT id FROM chunks WHERE vector_dims(embedding) = 384 "
                f"ORDER BY embedding::vector(384) <#> '{zero}'::vector(384) LIMIT 1"
            )
            assert "ix_chunks_embedding_384" in " ".join(str(row[0]) for row in plan)
        for got, want in zip(approximate, exact, strict=True):
            assert got[0][0] == want[0][0]
            assert len(got) == 10

    run(backend, scenario)
