"""POST /v1/vector_stores/{id}/search: real documents ingested by the real embedder, searched
through the SDK in strict mode on SQLite and PostgreSQL.

The documents avoid the words of the questions asked by meaning, so those are found by the
dense side; the identifier questions share nothing but the identifier with their answer,
so those are found by the keyword side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.api.vs_support import stores
from tests.conftest import ClientFactory, assert_error

pytestmark = pytest.mark.sdk3  # client.vector_stores.search is newer than openai 1.59.4

DOCUMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sourdough.txt": (
        "Sourdough starter is a culture of wild yeast and lactobacilli kept in flour and "
        "water. Feed the starter daily, then mix it into a dough at about seventy percent "
        "hydration. A long cold fermentation in the refrigerator develops the sour flavour "
        "and an open crumb. Score the loaf before baking it in a preheated Dutch oven.",
        {"topic": "food", "year": 2021, "public": True},
    ),
    "volcanoes.txt": (
        "Volcanoes form where magma rises through the crust, most often at the boundaries "
        "of tectonic plates. Basaltic lava flows are runny and travel far; andesitic magma "
        "is viscous and traps gas, which leads to explosive eruptions and pyroclastic flows. "
        "Seismometers near the summit record tremors before an eruption.",
        {"topic": "science", "year": 2019, "public": True},
    ),
    "kubernetes.txt": (
        "A Kubernetes deployment manages a set of identical pods and rolls out new versions "
        "gradually. Services give pods a stable virtual address, and a horizontal pod "
        "autoscaler changes the replica count from CPU metrics. Annotate the namespace "
        "with QV-2291 to opt it out of the nightly image garbage collection.",
        {"topic": "software", "year": 2023, "public": False},
    ),
    "castles.txt": (
        "Medieval castles were built with a keep, curtain walls and a gatehouse. A moat "
        "and a drawbridge slowed attackers, and arrow slits let defenders shoot while "
        "staying covered. Many stone castles replaced earlier motte-and-bailey forts built "
        "of timber and earth.",
        {"topic": "history", "year": 2019, "public": True},
    ),
}


@dataclass
class Corpus:
    store_id: str
    files: dict[str, str]  # filename -> file id

    def name_of(self, file_id: str) -> str:
        return next(name for name, fid in self.files.items() if fid == file_id)


@pytest.fixture
def corpus(client: openai.OpenAI) -> Corpus:
    store = stores(client).create(name="search-corpus")
    files: dict[str, str] = {}
    for name, (text, attributes) in DOCUMENTS.items():
        uploaded = client.files.create(file=(name, text.encode()), purpose="assistants")
        item = stores(client).files.create_and_poll(
            uploaded.id, vector_store_id=store.id, attributes=attributes
        )
        assert item.status == "completed", item.last_error
        files[name] = uploaded.id
    return Corpus(store.id, files)


def search(client: openai.OpenAI, corpus: Corpus, query: str | list[str], **kwargs: Any) -> Any:
    return stores(client).search(corpus.store_id, query=query, **kwargs)


def names(page: Any, corpus: Corpus) -> list[str]:
    return [corpus.name_of(item.file_id) for item in page.data]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("How do I make bread rise with natural leavening and get a tangy taste?", "sourdough.txt"),
        ("What happens when a mountain spews molten rock?", "volcanoes.txt"),
        ("How can my containerized app scale out automatically under load?", "kubernetes.txt"),
        ("How did fortresses in the Middle Ages keep invaders out?", "castles.txt"),
    ],
)
def test_a_paraphrased_question_finds_its_document(
    client: openai.OpenAI, corpus: Corpus, question: str, expected: str
) -> None:
    page = search(client, corpus, question)
    assert names(page, corpus)[0] == expected
    first = page.data[0]
    assert first.filename == expected
    assert first.attributes == DOCUMENTS[expected][1]
    assert [c.type for c in first.content] == ["text"]
    assert first.content[0].text in DOCUMENTS[expected][0]
    assert 0 < first.score <= 1
    assert [i.score for i in page.data] == sorted((i.score for i in page.data), reverse=True)


def test_a_rare_identifier_finds_its_document(client: openai.OpenAI, corpus: Corpus) -> None:
    page = search(client, corpus, "What does QV-2291 refer to?")
    assert names(page, corpus)[0] == "kubernetes.txt"


def test_the_page_object(client: openai.OpenAI, corpus: Corpus, http: httpx.Client) -> None:
    response = http.post(
        f"/vector_stores/{corpus.store_id}/search",
        json={"query": "lava", "rewrite_query": True},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "search_query", "data", "has_more", "next_page"}
    assert body["object"] == "vector_store.search_results.page"
    # No rewriting model: the query is searched, and reported, as it was sent.
    assert body["search_query"] == ["lava"]
    assert (body["has_more"], body["next_page"]) == (False, None)
    assert set(body["data"][0]) == {"file_id", "filename", "score", "attributes", "content"}
    assert isinstance(body["data"][0]["attributes"]["year"], int)


def test_several_queries_are_fused(
    client: openai.OpenAI, corpus: Corpus, http: httpx.Client
) -> None:
    queries = ["explosive eruptions", "drawbridge and moat"]
    body = http.post(
        f"/vector_stores/{corpus.store_id}/search", json={"query": queries, "max_num_results": 2}
    ).json()
    assert body["search_query"] == queries
    found = {corpus.name_of(item["file_id"]) for item in body["data"]}
    assert found == {"volcanoes.txt", "castles.txt"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"type": "eq", "key": "topic", "value": "history"}, {"castles.txt"}),
        ({"type": "ne", "key": "topic", "value": "history"}, set(DOCUMENTS) - {"castles.txt"}),
        (
            {"type": "in", "key": "topic", "value": ["food", "software"]},
            {"sourdough.txt", "kubernetes.txt"},
        ),
        ({"type": "nin", "key": "year", "value": [2019]}, {"sourdough.txt", "kubernetes.txt"}),
        ({"type": "gte", "key": "year", "value": 2021}, {"sourdough.txt", "kubernetes.txt"}),
        ({"type": "eq", "key": "public", "value": False}, {"kubernetes.txt"}),
        (
            {
                "type": "and",
                "filters": [
                    {"type": "eq", "key": "year", "value": 2019},
                    {
                        "type": "or",
                        "filters": [
                            {"type": "eq", "key": "topic", "value": "science"},
                            {"type": "lt", "key": "year", "value": 2000},
                        ],
                    },
                ],
            },
            {"volcanoes.txt"},
        ),
        ({"type": "eq", "key": "missing", "value": "x"}, set()),
    ],
)
def test_filters_restrict_the_files(
    client: openai.OpenAI, corpus: Corpus, filters: dict[str, Any], expected: set[str]
) -> None:
    page = search(client, corpus, "stone walls and fortifications", filters=filters)
    assert set(names(page, corpus)) == expected


@pytest.mark.parametrize("ranker", ["auto", "default-2024-11-15", "none"])
def test_score_threshold_and_max_num_results(
    client: openai.OpenAI, corpus: Corpus, ranker: str
) -> None:
    query = "magma and tectonic plates"
    everything = search(
        client, corpus, query, max_num_results=50, ranking_options={"ranker": ranker}
    )
    assert len(everything.data) == len(DOCUMENTS)  # one chunk per short document
    assert names(everything, corpus)[0] == "volcanoes.txt"
    assert len(search(client, corpus, "magma", max_num_results=2).data) == 2
    threshold = everything.data[1].score + 1e-6
    options = {"score_threshold": threshold, "ranker": ranker}
    cut = search(client, corpus, query, ranking_options=options)
    assert names(cut, corpus) == ["volcanoes.txt"]
    assert cut.data[0].score >= threshold


def test_an_unrelated_question_scores_low(client: openai.OpenAI, corpus: Corpus) -> None:
    page = search(client, corpus, "Who won the football world cup?")
    assert all(item.score < 0.2 for item in page.data)
    cut = search(
        client, corpus, "Who won the football world cup?", ranking_options={"score_threshold": 0.3}
    )
    assert cut.data == []


def test_deleting_a_file_removes_its_chunks(client: openai.OpenAI, corpus: Corpus) -> None:
    question = "What happens when a mountain spews molten rock?"
    assert names(search(client, corpus, question), corpus)[0] == "volcanoes.txt"
    stores(client).files.delete(corpus.files["volcanoes.txt"], vector_store_id=corpus.store_id)
    assert "volcanoes.txt" not in names(search(client, corpus, question), corpus)
    client.files.delete(corpus.files["castles.txt"])
    assert "castles.txt" not in names(search(client, corpus, "castle moat"), corpus)


def test_an_empty_store_finds_nothing(client: openai.OpenAI) -> None:
    store = stores(client).create()
    page = stores(client).search(store.id, query="anything")
    assert page.data == []


def test_another_projects_store_is_404(
    corpus: Corpus, make_client: ClientFactory, http: httpx.Client
) -> None:
    other = make_client()
    with pytest.raises(openai.NotFoundError):
        stores(other).search(corpus.store_id, query="lava")
    assert_error(http.post("/vector_stores/vs_missing/search", json={"query": "x"}), 404)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "query"),
        ({"query": ""}, "query"),
        ({"query": []}, "query"),
        ({"query": ["ok", "  "]}, "query[1]"),
        ({"query": 5}, "query"),
        ({"query": "x", "max_num_results": 0}, "max_num_results"),
        ({"query": "x", "max_num_results": 51}, "max_num_results"),
        ({"query": "x", "ranking_options": {"ranker": "best"}}, "ranking_options.ranker"),
        (
            {"query": "x", "ranking_options": {"score_threshold": 1.5}},
            "ranking_options.score_threshold",
        ),
        ({"query": "x", "filters": {"key": "a", "value": 1}}, "filters.type"),
        ({"query": "x", "filters": {"type": "like", "key": "a", "value": 1}}, "filters.type"),
        ({"query": "x", "filters": {"type": "in", "key": "a", "value": 1}}, "filters.value"),
        (
            {"query": "x", "filters": {"type": "and", "filters": [{"type": "eq", "key": "a"}]}},
            "filters.filters[0].value",
        ),
    ],
)
def test_invalid_requests_are_400(
    client: openai.OpenAI, http: httpx.Client, body: dict[str, Any], param: str
) -> None:
    store = stores(client).create()
    response = http.post(f"/vector_stores/{store.id}/search", json=body)
    assert_error(response, 400, param=param)
