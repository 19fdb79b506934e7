"""Hybrid retrieval shared by both dialects: candidates, fusion, relevance scores.

Each query string asks each store for two lists of candidates: keyword (BM25-style) and
dense (inner product of unit vectors, i.e. the cosine), ``CANDIDATES`` each.

Ranker ``none``: the lists are fused by reciprocal rank fusion, which needs no calibration
between a BM25 score and a cosine; ``score`` is the fused value over the best one possible
(first in every list), so it falls with the rank: 1.0 is first everywhere, 0.5 first in
one of two lists only.

Rankers ``auto`` and ``default-2024-11-15`` re-score every candidate of the fused pool by
relevance: ``DENSE_WEIGHT * cosine + (1 - DENSE_WEIGHT) * coverage``, where coverage is
the share of the query's terms, weighted by their inverse document frequency in the
store, that the chunk holds (terms the store lacks count too: a chunk holding the only
query word the store has has not matched the query). Both parts are absolute, so the
score means the same thing for every query and ``score_threshold`` cuts weak matches
rather than a fixed share of each list. RRF favours any chunk found by both methods, and
in a small store every chunk is in the dense list, so one shared common word outranked the
best cosine; on the benchmark (``bench/retrieval.py``) the blend beats RRF and each method
alone on recall@5 on both databases.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from assistd.retrieval.index import ChunkInput, SearchHit, SearchQuery, Vectors
from assistd.store import chunks as stored
from assistd.store.chunks import ChunkRow
from assistd.store.database import Connection

# Re-exported: the indexes and the benchmark read these from here.
__all__ = ["ChunkRow", "stored_count"]

Mode = Literal["hybrid", "rrf", "keyword", "dense"]
# (chunk id, the list's own score), best first.
Ranked = list[tuple[int, float]]

CANDIDATES = 50  # per list: enough for 50 results even where the two lists disagree
RRF_K = 60  # Cormack et al.'s constant: damps the head so one list cannot dominate
# Document frequencies are counted up to this many chunks: past it a term is common, and
# counting further would cost as much as a search. Candidates for keyword ranking come from
# the terms under it (or, when every term is common, the two least common): ranking every
# chunk that holds a common word costs more than all the rest of a search. The relevance
# score's term coverage counts the same terms (and those the store lacks).
DF_CAP = 1000
DENSE_WEIGHT = 0.7  # the cosine's share of the relevance score; see bench/retrieval.py

# Words a question is made of that say nothing about its answer. Dropped from keyword
# queries (PostgreSQL's english configuration drops its own list): "what is the" would
# otherwise make every chunk a candidate and spend the time on ranking them.
STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is
    it its itself just me more most my myself no nor not now of off on once only or other our
    ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we
    were what when where which while who whom why will with would you your yours yourself
    yourselves""".split()  # noqa: SIM905 - a list literal of 130 words is harder to read
)
# A word, or an identifier joined by - . : / _ (XK-4471, max_num_results, v1.2.3).
_TERM = re.compile(r"\w+(?:[-.:/]\w+)*")


def query_terms(text: str, limit: int = 32) -> list[str]:
    """The distinct content words of a query, in order; stop words only if nothing else."""
    words = list(dict.fromkeys(t.lower() for t in _TERM.findall(text)))
    content = [w for w in words if w not in STOP_WORDS]
    return (content or words)[:limit]


def pack(vectors: Vectors) -> list[bytes]:
    """Rows as the little-endian float32 bytes SQLite stores."""
    rows = np.ascontiguousarray(vectors, dtype="<f4")
    return [row.tobytes() for row in rows]


def check_input(chunks: Sequence[ChunkInput], vectors: Vectors) -> None:
    if vectors.ndim != 2 or vectors.shape[0] != len(chunks):
        raise ValueError(f"{len(chunks)} chunks but vectors of shape {vectors.shape}")


def fuse(lists: Iterable[Ranked], k: int = RRF_K) -> dict[int, float]:
    """Reciprocal rank fusion: each list adds ``1 / (k + rank)`` (rank from 1)."""
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, (chunk_id, _score) in enumerate(ranked, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
    return fused


def merge(lists: Iterable[Ranked], limit: int) -> Ranked:
    """One list from several stores' lists of the same query, by their own scores."""
    merged = [item for ranked in lists for item in ranked]
    merged.sort(key=lambda item: (-item[1], item[0]))
    return merged[:limit]


@dataclass(frozen=True)
class KeywordResult:
    """A store's keyword matches for one query, and what relevance counts of the query's
    terms, keyed as ``term_hits`` takes them.

    ``weights`` (BM25's inverse document frequency in the store) covers the terms used for
    ranking (``present``) and the terms the store lacks, which keep their (highest) weight:
    a chunk holding the one query word that happens to occur in the store has not matched
    the query. Common terms left out of the ranking (see ``DF_CAP``) are left out here too.
    """

    ranked: Ranked
    weights: dict[str, float]
    present: frozenset[str] = frozenset()
    # The chunks holding a term, where finding the weight already listed them all.
    holders: dict[str, frozenset[int]] = field(default_factory=dict)


async def bump(conn: Connection, vector_store_id: str, delta: int) -> None:
    """Record in the writer's transaction that a store's chunks changed by ``delta``."""
    await stored.bump(conn, vector_store_id, delta)


async def stored_count(conn: Connection, vector_store_id: str) -> int:
    return await stored.stored_count(conn, vector_store_id)


def idf(df: int, size: int) -> float:
    """BM25's inverse document frequency (never negative)."""
    return math.log(1.0 + (max(size, df) - df + 0.5) / (df + 0.5))


class HybridChunkIndex(ABC):
    """``ChunkIndex.search`` on top of per-dialect primitives.

    ``file_ids`` in a ``SearchQuery``: a store the mapping leaves out has no allowed file
    (a filter that forgot a store must not widen the search).
    """

    candidates = CANDIDATES
    dense_weight = DENSE_WEIGHT

    @abstractmethod
    async def keyword(
        self,
        conn: Connection,
        vector_store_id: str,
        text: str,
        file_ids: set[str] | None,
        limit: int,
    ) -> KeywordResult:
        """The best keyword matches in one store, higher score first."""

    @abstractmethod
    async def dense(
        self,
        conn: Connection,
        vector_store_id: str,
        vectors: Vectors,
        file_ids: set[str] | None,
        limit: int,
    ) -> list[Ranked]:
        """The nearest chunks of one store to each query vector (one list per row)."""

    @abstractmethod
    async def term_hits(
        self, conn: Connection, vector_store_id: str, terms: Sequence[str], ids: Sequence[int]
    ) -> dict[int, set[str]]:
        """Which of ``terms`` (keys of ``KeywordResult.weights``) each chunk holds."""

    async def _held(
        self, conn: Connection, store: str, result: KeywordResult, ids: Sequence[int]
    ) -> dict[int, set[str]]:
        """``term_hits`` for the terms ``result`` does not already list the holders of."""
        unknown = sorted(result.present - set(result.holders))
        held = await self.term_hits(conn, store, unknown, ids) if unknown else {}
        for term, holders in result.holders.items():
            for cid in holders.intersection(ids):
                held.setdefault(cid, set()).add(term)
        return held

    @abstractmethod
    async def similarities(
        self, conn: Connection, vector_store_id: str, vectors: Vectors, ids: Sequence[int]
    ) -> dict[int, Vectors]:
        """Each chunk's inner product with every query vector (one value per row)."""

    def _column_values(self, vectors: Vectors) -> Sequence[object]:
        """The ``embedding`` column's value for each row of ``vectors``."""
        return list(vectors)

    def _forget(self, vector_store_id: str) -> None:  # noqa: B027 - a hook, often unneeded
        """Drop what is kept in memory about a store whose chunks are all gone."""

    async def add(
        self,
        conn: Connection,
        *,
        vector_store_id: str,
        file_id: str,
        chunks: Sequence[ChunkInput],
        vectors: Vectors,
    ) -> None:
        check_input(chunks, vectors)
        # A retried ingestion replaces what an earlier attempt left.
        removed = await stored.remove(conn, vector_store_id, file_id)
        await stored.add(
            conn,
            vector_store_id,
            file_id,
            [
                stored.NewChunk(chunk.seq, chunk.text, chunk.token_count, value)
                for chunk, value in zip(chunks, self._column_values(vectors), strict=True)
            ],
        )
        await bump(conn, vector_store_id, len(chunks) - removed)

    async def delete(
        self, conn: Connection, *, vector_store_id: str, file_id: str | None = None
    ) -> int:
        removed = await stored.remove(conn, vector_store_id, file_id)
        if file_id is None:
            await stored.forget(conn, vector_store_id)
            self._forget(vector_store_id)
        elif removed:
            await bump(conn, vector_store_id, -removed)
        return removed

    async def fetch(self, conn: Connection, ids: Sequence[int]) -> dict[int, ChunkRow]:
        """The rows of these chunks (those that still exist)."""
        return await stored.fetch(conn, ids)

    async def search(self, conn: Connection, query: SearchQuery) -> list[SearchHit]:
        return await self.search_mode(conn, query, "rrf" if query.ranker == "none" else "hybrid")

    async def search_mode(
        self, conn: Connection, query: SearchQuery, mode: Mode
    ) -> list[SearchHit]:
        """Search in one of the modes (the benchmark compares them)."""
        if query.limit <= 0 or not query.texts:
            return []
        stores = [
            (store, None if query.file_ids is None else query.file_ids.get(store, set()))
            for store in dict.fromkeys(query.vector_store_ids)
        ]
        stores = [(store, files) for store, files in stores if files is None or files]
        found = await self._candidates(conn, query, stores, mode)
        if mode == "hybrid":
            scored = await self._rescore(conn, query, found)
        else:
            scored = _fused_scores(found.lists)
        kept = [(cid, score) for cid, score in scored if score >= query.score_threshold]
        kept = kept[: query.limit]
        rows = await self.fetch(conn, [cid for cid, _ in kept])
        return [
            SearchHit(
                vector_store_id=rows[cid].vector_store_id,
                file_id=rows[cid].file_id,
                seq=rows[cid].seq,
                text=rows[cid].text,
                score=min(1.0, max(0.0, score)),
            )
            for cid, score in kept
            if cid in rows
        ]

    async def _candidates(
        self,
        conn: Connection,
        query: SearchQuery,
        stores: list[tuple[str, set[str] | None]],
        mode: Mode,
    ) -> _Found:
        found = _Found()
        if mode != "dense":
            for text in query.texts:
                per_store: list[Ranked] = []
                for store, files in stores:
                    result = await self.keyword(conn, store, text, files, self.candidates)
                    found.keyword[(store, text)] = result
                    found.note(store, result.ranked)
                    per_store.append(result.ranked)
                found.lists.append(merge(per_store, self.candidates))
        if mode != "keyword":
            per_store_dense: list[list[Ranked]] = []
            for store, files in stores:
                nearest = await self.dense(conn, store, query.vectors, files, self.candidates)
                for ranked in nearest:
                    found.note(store, ranked)
                per_store_dense.append(nearest)
            for row in range(len(query.texts)):
                found.lists.append(merge((n[row] for n in per_store_dense), self.candidates))
        return found

    async def _rescore(
        self, conn: Connection, query: SearchQuery, found: _Found
    ) -> list[tuple[int, float]]:
        """Every candidate's relevance: a blend of its cosine with the query and the share
        of the query's weighted terms it holds, best over the query strings."""
        alpha = self.dense_weight
        best: dict[int, float] = {}
        for store, pool in found.pools.items():
            ids = sorted(pool)
            cosines = await self.similarities(conn, store, query.vectors, ids)
            for row, text in enumerate(query.texts):
                result = found.keyword.get((store, text))
                weights = result.weights if result is not None else {}
                total = sum(weights.values())
                hits = await self._held(conn, store, result, ids) if result is not None else {}
                for cid in ids:
                    held = sum(weights[t] for t in hits.get(cid, ()))
                    coverage = held / total if total else 0.0
                    cosine = float(cosines[cid][row]) if cid in cosines else 0.0
                    score = alpha * max(cosine, 0.0) + (1.0 - alpha) * coverage
                    best[cid] = max(best.get(cid, 0.0), score)
        return sorted(best.items(), key=lambda item: (-item[1], item[0]))


@dataclass
class _Found:
    lists: list[Ranked] = field(default_factory=list)
    keyword: dict[tuple[str, str], KeywordResult] = field(default_factory=dict)
    pools: dict[str, set[int]] = field(default_factory=dict)

    def note(self, store: str, ranked: Ranked) -> None:
        self.pools.setdefault(store, set()).update(cid for cid, _ in ranked)


def _fused_scores(lists: list[Ranked]) -> list[tuple[int, float]]:
    """RRF order; the score is the fused value over the best one possible."""
    fused = fuse(lists)
    if not fused:
        return []
    best = len(lists) / (RRF_K + 1)
    ranked = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    return [(cid, value / best) for cid, value in ranked]
