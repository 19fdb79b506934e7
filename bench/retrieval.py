"""File search retrieval: quality, ingestion throughput and search latency.

Quality. The corpus is ``pydoc_data.topics`` (the help texts of CPython's language
reference, 79 topics, 465k characters), chunked as ingestion chunks it and embedded by the
local all-MiniLM-L6-v2; the questions are in ``retrieval_questions.py``, each labelled by
hand with the topics that answer it. A hit is relevant when its chunk comes from one of
them; chunks are folded into topics in rank order. Prints recall@5 and nDCG@10 for
keyword only, dense only, RRF (ranker "none") and the default ranker (a blend of cosine
and weighted term coverage, at several weights), on each database.

Ingestion. The 79 topics uploaded through the SDK to ``assistd serve`` and attached as
one file batch; the time from the batch's creation until no file is in progress, as
documents, chunks and pages (3,000 characters) per second.

Latency. Stores of 10k and 100k synthetic chunks (the corpus's chunks repeated with a
unique word each, their vectors perturbed: cosine about 0.95 to the original) searched
with the benchmark's questions; p50/p95 of ``ChunkIndex.search`` (embedding not included,
measured separately), and of each side alone.

    .venv/bin/python bench/retrieval.py [--backends sqlite,postgresql]
        [--sizes 10000,100000] [--chunk-size 800 --overlap 400] [--skip-ingest]
        [--skip-latency]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pydoc_data.topics import topics as TOPICS

import numpy as np
import openai
from objects import start_server
from retrieval_questions import QUESTIONS, check, relevant

from assistd.embeddings.local import LocalEmbedder
from assistd.retrieval.chunking import ChunkingStrategy, chunk_text
from assistd.retrieval.factory import build_chunk_index
from assistd.retrieval.index import ChunkInput, SearchQuery, Vectors
from assistd.retrieval.search import HybridChunkIndex, Mode
from assistd.store.database import Database
from assistd.store.tables import vector_stores

POSTGRES_URL = os.environ.get(
    "ASSISTD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PAGE_CHARS = 3000
WEIGHTS = (0.5, 0.6, 0.7, 0.8, 0.9)


@asynccontextmanager
async def database(backend: str) -> AsyncIterator[Database]:
    """A fresh, migrated database: SQLite in a temporary directory, or a new PostgreSQL one."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
            await db.migrate()
            try:
                yield db
            finally:
                await db.dispose()
        return
    import asyncpg

    name = "assistd_bench_" + secrets.token_hex(4)
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    db = Database(f"{base}/{name}")
    try:
        await db.migrate()
        yield db
    finally:
        await db.dispose()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def new_store(db: Database) -> str:
    store = "vs_" + secrets.token_hex(12)
    async with db.write() as conn:
        await conn.execute(
            vector_stores.insert().values(
                id=store, sort_key=0, project="bench", created_at=0, metadata={}
            )
        )
    return store


def chunk_corpus(strategy: ChunkingStrategy) -> list[tuple[str, ChunkInput]]:
    """(topic, chunk) for every chunk of every topic, in order."""
    return [
        (topic, ChunkInput(c.index, c.text, c.token_count))
        for topic, text in sorted(TOPICS.items())
        for c in chunk_text(text, strategy)
    ]


async def add_all(
    db: Database,
    index: HybridChunkIndex,
    store: str,
    items: list[tuple[str, ChunkInput]],
    vectors: Vectors,
) -> None:
    by_file: dict[str, list[int]] = {}
    for at, (file_id, _) in enumerate(items):
        by_file.setdefault(file_id, []).append(at)
    for file_id, rows in by_file.items():
        async with db.write() as conn:
            await index.add(
                conn,
                vector_store_id=store,
                file_id=file_id,
                chunks=[items[i][1] for i in rows],
                vectors=vectors[rows],
            )


# ---- quality ------------------------------------------------------------------------------


def metrics(ranked_topics: list[str], wanted: set[str]) -> tuple[float, float]:
    recall = len(wanted & set(ranked_topics[:5])) / len(wanted)
    dcg = sum(1 / math.log2(i + 2) for i, t in enumerate(ranked_topics[:10]) if t in wanted)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(len(wanted), 10)))
    return recall, dcg / ideal


async def quality(
    db: Database, index: HybridChunkIndex, store: str, qvecs: Vectors, kinds: set[str]
) -> dict[str, tuple[float, float]]:
    modes: list[tuple[str, Mode, float]] = [
        ("keyword only", "keyword", 0.0),
        ("dense only", "dense", 0.0),
        ("hybrid RRF (ranker none)", "rrf", 0.0),
    ] + [(f"hybrid blend, cosine weight {w}", "hybrid", w) for w in WEIGHTS]
    results: dict[str, tuple[float, float]] = {}
    default = index.dense_weight
    for label, mode, weight in modes:
        index.dense_weight = weight or default
        scores = []
        for at, question in enumerate(QUESTIONS):
            if question.kind not in kinds:
                continue
            query = SearchQuery([store], [question.text], qvecs[at : at + 1], limit=50)
            async with db.read() as conn:
                hits = await index.search_mode(conn, query, mode)
            ranked = list(dict.fromkeys(hit.file_id for hit in hits))
            scores.append(metrics(ranked, relevant(question)))
        results[label] = (
            statistics.mean(s[0] for s in scores),
            statistics.mean(s[1] for s in scores),
        )
    index.dense_weight = default
    return results


# ---- latency ------------------------------------------------------------------------------


async def synthetic_store(
    db: Database,
    index: HybridChunkIndex,
    base: list[tuple[str, ChunkInput]],
    vectors: Vectors,
    size: int,
    rng: np.random.Generator,
) -> tuple[str, float]:
    """A store of ``size`` chunks in files of 100; returns it and the chunks/s of adding."""
    store = await new_store(db)
    started = time.perf_counter()
    for first in range(0, size, 100):
        rows = [(first + i) % len(base) for i in range(min(100, size - first))]
        noise = rng.standard_normal((len(rows), vectors.shape[1])).astype(np.float32)
        batch = vectors[rows] + 0.3 * noise / math.sqrt(vectors.shape[1])
        batch /= np.linalg.norm(batch, axis=1, keepdims=True)
        chunks = [
            ChunkInput(i, f"{base[r][1].text} syn{first + i}", base[r][1].token_count + 2)
            for i, r in enumerate(rows)
        ]
        async with db.write() as conn:
            await index.add(
                conn,
                vector_store_id=store,
                file_id=f"file-syn{first // 100}",
                chunks=chunks,
                vectors=batch,
            )
    return store, size / (time.perf_counter() - started)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.95)] * 1000


async def latency(
    db: Database, index: HybridChunkIndex, store: str, qvecs: Vectors, rounds: int = 2
) -> dict[str, tuple[float, float]]:
    found: dict[str, tuple[float, float]] = {}
    for label, mode in (
        ("hybrid (default ranker)", "hybrid"),
        ("keyword only", "keyword"),
        ("dense only", "dense"),
    ):
        samples = []
        for _ in range(rounds):
            for at, question in enumerate(QUESTIONS):
                query = SearchQuery([store], [question.text], qvecs[at : at + 1], limit=10)
                started = time.perf_counter()
                async with db.read() as conn:
                    await index.search_mode(conn, query, mode)  # type: ignore[arg-type]
                samples.append(time.perf_counter() - started)
        found[label] = percentiles(samples)
    return found


# ---- ingestion through the server ---------------------------------------------------------


def serve(data_dir: str, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    # The chat model is not needed here: keep its memory and threads out of the way.
    return start_server(data_dir, database_url, ASSISTD_EMBEDDED_MODEL="false")


def upload_and_ingest(base_url: str) -> tuple[int, float]:
    """Upload the topics, attach them as one batch; the file count and the seconds from the
    batch's creation until no file is in progress."""
    client = openai.OpenAI(base_url=base_url, api_key="bench")
    ids = [
        client.files.create(file=(f"{topic}.txt", text.encode()), purpose="assistants").id
        for topic, text in sorted(TOPICS.items())
    ]
    store = client.vector_stores.create()
    started = time.perf_counter()
    batch = client.vector_stores.file_batches.create(store.id, file_ids=ids)
    while batch.file_counts.in_progress:
        time.sleep(0.05)
        batch = client.vector_stores.file_batches.retrieve(batch.id, vector_store_id=store.id)
    elapsed = time.perf_counter() - started
    assert batch.file_counts.completed == len(ids), batch.file_counts
    return len(ids), elapsed


async def ingestion(backend: str) -> tuple[float, float, float, int]:
    """docs/s, chunks/s, pages/s and the chunk count of ingesting the corpus once."""
    async with database(backend) as db:
        url = None if backend == "sqlite" else db.url
        with tempfile.TemporaryDirectory() as tmp:
            proc, base_url = serve(tmp, url)
            try:
                count, elapsed = await asyncio.to_thread(upload_and_ingest, base_url)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    # What the server stored: ingestion chunks with the default strategy.
    chunks = len(chunk_corpus(ChunkingStrategy()))
    chars = sum(len(text) for text in TOPICS.values())
    return count / elapsed, chunks / elapsed, chars / PAGE_CHARS / elapsed, chunks


# ---- main ---------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> None:
    problems = check(TOPICS)
    if problems:
        raise SystemExit("labels do not hold on this Python:\n" + "\n".join(problems))
    strategy = ChunkingStrategy(args.chunk_size, args.overlap)
    items = chunk_corpus(strategy)
    embedder = LocalEmbedder()
    started = time.perf_counter()
    vectors = (await embedder.embed([chunk.text for _, chunk in items])).vectors
    embed_rate = len(items) / (time.perf_counter() - started)
    qvecs = (await embedder.embed([q.text for q in QUESTIONS])).vectors
    single = []
    for question in QUESTIONS[:20]:
        t0 = time.perf_counter()
        await embedder.embed([question.text])
        single.append(time.perf_counter() - t0)
    await embedder.aclose()
    kinds = {
        "all": {"paraphrase", "identifier"},
        "paraphrase": {"paraphrase"},
        "identifier": {"identifier"},
    }
    print(
        f"corpus: {len(TOPICS)} topics, {len(items)} chunks of {strategy.max_chunk_size_tokens}/"
        f"{strategy.chunk_overlap_tokens} tokens; {len(QUESTIONS)} questions "
        f"({sum(q.kind == 'paraphrase' for q in QUESTIONS)} paraphrased, "
        f"{sum(q.kind == 'identifier' for q in QUESTIONS)} identifiers)"
    )
    one = statistics.median(single) * 1000
    print(f"embedding: {embed_rate:.0f} chunks/s in batches; one query p50 {one:.1f} ms")
    backends = args.backends.split(",")
    for backend in backends:
        async with database(backend) as db:
            index = build_chunk_index(db.dialect)
            assert isinstance(index, HybridChunkIndex)
            store = await new_store(db)
            await add_all(db, index, store, [(t, c) for t, c in items], vectors)
            print(f"\n== quality on {backend}: recall@5 / nDCG@10 ==")
            print(f"{'':34} {'all':>13} {'paraphrased':>13} {'identifiers':>13}")
            table = {
                kind: await quality(db, index, store, qvecs, wanted)
                for kind, wanted in kinds.items()
            }
            for label in table["all"]:
                cells = " ".join(
                    f"{table[k][label][0]:5.3f}/{table[k][label][1]:5.3f}" for k in kinds
                )
                print(f"{label:34} {cells}")
            if args.skip_latency:
                continue
            rng = np.random.default_rng(7)
            for size in (int(s) for s in args.sizes.split(",")):
                big, rate = await synthetic_store(db, index, items, vectors, size, rng)
                if backend == "postgresql":
                    # What autovacuum does soon after a bulk load: planner statistics.
                    async with db.write() as conn:
                        await conn.exec_driver_sql("ANALYZE chunks")
                query = SearchQuery([big], [QUESTIONS[0].text], qvecs[:1], limit=10)
                t0 = time.perf_counter()
                async with db.read() as conn:
                    await index.search(conn, query)
                cold = (time.perf_counter() - t0) * 1000
                print(
                    f"\n== latency on {backend}, {size} chunks in one store "
                    f"(added at {rate:.0f} chunks/s; first search {cold:.0f} ms) =="
                )
                for label, (p50, p95) in (await latency(db, index, big, qvecs)).items():
                    print(f"{label:34} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    if not args.skip_ingest:
        print("\n== ingestion through the server (SDK file batch of the 79 topics) ==")
        for backend in backends:
            docs, chunks, pages, count = await ingestion(backend)
            print(
                f"{backend:12} {docs:6.1f} docs/s  {chunks:6.1f} chunks/s  "
                f"{pages:6.1f} pages/s  ({count} chunks)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--chunk-size", type=int, default=800)
    parser.add_argument("--overlap", type=int, default=400)
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    asyncio.run(main(parser.parse_args()))
