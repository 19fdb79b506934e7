"""POST /v1/embeddings through a real server and the official SDK (strict validation).

The local all-MiniLM-L6-v2 runs for real. Embeddings touch no database, so this module
runs one SQLite server of its own instead of the session's per-database servers; the
upstream proxy runs against ``FakeUpstream``.

The SDK asks for base64 unless ``encoding_format`` is given, and decodes it after
validating the response: its strict mode rejects the base64 string before decoding (against
OpenAI too), so strict clients ask for ``float`` and the base64 path is checked with the
SDK's default (non-strict) client, the one applications use.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from assistd.tokenizer import encoding
from tests.conftest import LiveServer, assert_error, make_settings, raw_client
from tests.fake_upstream import FakeUpstream, error_reply, fake_embedding

LOCAL = "all-MiniLM-L6-v2"
ALIASES = ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"]
UPSTREAM_KEY = "sk-upstream-secret-0123456789abcdef"


@pytest.fixture(scope="module")
def embed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(make_settings(tmp_path_factory.mktemp("embeddings"))) as live:
        yield live


def sdk_client(server: LiveServer, *, strict: bool = True) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=server.base_url,
        api_key=server.new_key("proj_" + secrets.token_hex(6)),
        max_retries=0,
        _strict_response_validation=strict,
    )


@pytest.fixture
def client(embed_server: LiveServer) -> Iterator[openai.OpenAI]:
    with sdk_client(embed_server) as sdk:
        yield sdk


@pytest.fixture
def default_client(embed_server: LiveServer) -> Iterator[openai.OpenAI]:
    with sdk_client(embed_server, strict=False) as sdk:
        yield sdk


@pytest.fixture
def http(embed_server: LiveServer, client: openai.OpenAI) -> Iterator[httpx.Client]:
    with raw_client(embed_server, client.api_key) as raw:
        yield raw


def matrix(response: openai.types.CreateEmbeddingResponse) -> np.ndarray:
    assert [item.index for item in response.data] == list(range(len(response.data)))
    return np.array([item.embedding for item in response.data], dtype=np.float32)


def embed(client: openai.OpenAI, texts: list[str]) -> np.ndarray:
    return matrix(client.embeddings.create(model=LOCAL, input=texts, encoding_format="float"))


# ---- the local model -------------------------------------------------------------------


def test_local_default_base64(
    default_client: openai.OpenAI, client: openai.OpenAI, http: httpx.Client
) -> None:
    texts = ["The quick brown fox jumps over the lazy dog.", "Hello world"]
    # The SDK asks for base64 unless told otherwise, and decodes it to floats.
    response = default_client.embeddings.create(model=LOCAL, input=texts)
    assert response.object == "list"
    assert response.model == LOCAL
    vectors = matrix(response)
    assert vectors.shape == (2, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert response.usage.prompt_tokens > 0
    assert response.usage.total_tokens == response.usage.prompt_tokens
    assert np.array_equal(vectors, embed(client, texts))
    # On the wire: base64 of 384 little-endian float32 values.
    raw = http.post(
        "/embeddings", json={"model": LOCAL, "input": texts, "encoding_format": "base64"}
    )
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert set(body) == {"object", "data", "model", "usage"}
    assert set(body["data"][0]) == {"object", "index", "embedding"}
    assert body["data"][0]["object"] == "embedding"
    decoded = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4")
    assert np.array_equal(decoded, vectors[0])


def test_local_float(client: openai.OpenAI, http: httpx.Client) -> None:
    texts = ["Embeddings turn text into vectors.", "Vectors can be compared by cosine."]
    as_float = client.embeddings.create(model=LOCAL, input=texts, encoding_format="float")
    assert as_float.model == LOCAL
    assert all(len(item.embedding) == 384 for item in as_float.data)
    assert np.allclose(np.linalg.norm(matrix(as_float), axis=1), 1.0, atol=1e-5)
    assert as_float.usage.prompt_tokens > 0
    raw = http.post("/embeddings", json={"model": LOCAL, "input": texts[0]})
    assert raw.status_code == 200, raw.text
    embedding = raw.json()["data"][0]["embedding"]  # float is the default without the SDK
    assert isinstance(embedding, list)
    assert len(embedding) == 384


def test_related_sentence_ranks_higher(client: openai.OpenAI) -> None:
    query, related, unrelated = embed(
        client,
        [
            "How do I reset my password?",
            "To change a forgotten password, click 'Forgot password' on the login page.",
            "The recipe needs two cups of flour and a pinch of salt.",
        ],
    )
    assert float(query @ related) > float(query @ unrelated) + 0.2


def test_batch_order_preserved(client: openai.OpenAI) -> None:
    texts = [
        "A short one.",
        "A considerably longer sentence that goes on for a while about nothing in particular, "
        "so that it sorts after the others when batches are made by length.",
        "Medium length sentence about the weather today.",
        "x",
    ]
    batched = embed(client, texts)
    singles = np.vstack([embed(client, [text]) for text in texts])
    assert np.allclose(batched, singles, atol=1e-6)
    # Distinct texts, distinct rows: nothing was swapped or duplicated.
    similarity = batched @ batched.T
    assert all(similarity[i, j] < 0.99 for i in range(4) for j in range(4) if i != j)


def test_single_string_and_deterministic(client: openai.OpenAI) -> None:
    first = client.embeddings.create(
        model=LOCAL, input="Same text, same vector.", encoding_format="float"
    )
    second = client.embeddings.create(
        model=LOCAL, input="Same text, same vector.", encoding_format="float"
    )
    assert len(first.data) == 1
    assert first.data[0].embedding == second.data[0].embedding
    assert first.usage == second.usage


def test_token_array_input(client: openai.OpenAI) -> None:
    texts = ["Token ids are decoded with cl100k_base.", "Second input"]
    tokens = [encoding("cl100k_base").encode(text) for text in texts]
    expected = embed(client, texts)
    several = client.embeddings.create(model=LOCAL, input=tokens, encoding_format="float")
    assert np.array_equal(matrix(several), expected)
    one = client.embeddings.create(model=LOCAL, input=tokens[0], encoding_format="float")
    assert np.array_equal(matrix(one), expected[:1])


@pytest.mark.parametrize("alias", ALIASES)
def test_openai_names_served_locally_offline(client: openai.OpenAI, alias: str) -> None:
    text = ["Tutorials that hard-code OpenAI's model names run offline."]
    response = client.embeddings.create(model=alias, input=text, encoding_format="float")
    assert response.model == alias
    assert np.array_equal(matrix(response), embed(client, text))


def test_dimensions(client: openai.OpenAI, http: httpx.Client) -> None:
    response = client.embeddings.create(
        model=LOCAL, input="fits", dimensions=384, encoding_format="float"
    )
    assert len(response.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.embeddings.create(model=LOCAL, input="too short", dimensions=256)
    assert exc_info.value.param == "dimensions"
    body = {"model": LOCAL, "input": "x", "dimensions": 0}
    assert_error(http.post("/embeddings", json=body), 400, param="dimensions")


def test_unknown_model(client: openai.OpenAI, http: httpx.Client) -> None:
    with pytest.raises(openai.NotFoundError) as exc_info:
        client.embeddings.create(model="no-such-embedder", input="x")
    assert exc_info.value.code == "model_not_found"
    assert exc_info.value.param == "model"
    error = assert_error(
        http.post("/embeddings", json={"model": "nope", "input": "x"}),
        404,
        param="model",
        code="model_not_found",
    )
    assert error["message"] == "The model 'nope' does not exist or you do not have access to it."


@pytest.mark.parametrize(
    ("value", "param"),
    [("", "input"), ([], "input"), (["fine", ""], "input[1]"), ([[]], "input[0]")],
)
def test_empty_input(http: httpx.Client, value: object, param: str) -> None:
    error = assert_error(
        http.post("/embeddings", json={"model": LOCAL, "input": value}), 400, param=param
    )
    assert "empty" in error["message"]


def test_empty_input_sdk(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc_info:
        client.embeddings.create(model=LOCAL, input="")
    assert exc_info.value.param == "input"


def test_too_many_inputs(http: httpx.Client) -> None:
    body = {"model": LOCAL, "input": ["x"] * 2049}
    error = assert_error(
        http.post("/embeddings", json=body), 400, param="input", code="array_above_max_length"
    )
    assert "2048" in error["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x"}, "model"),
        ({"model": LOCAL}, "input"),
        ({"model": LOCAL, "input": 5}, "input"),
        ({"model": LOCAL, "input": ["text", 5]}, "input[1]"),
        ({"model": LOCAL, "input": [1, True]}, "input[1]"),
        ({"model": LOCAL, "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": LOCAL, "input": [[1, 2], [10**9]]}, "input[1]"),
        ({"model": LOCAL, "input": [-1]}, "input[0]"),
        ({"model": LOCAL, "input": [[1, 2], [3, "x"]]}, "input[1][1]"),
        ({"model": LOCAL, "input": [[1], 2]}, "input[1]"),
        ({"model": LOCAL, "input": [None]}, "input[0]"),
        ({"model": LOCAL, "input": "x", "dimensions": "many"}, "dimensions"),
    ],
)
def test_invalid_requests(http: httpx.Client, body: dict[str, object], param: str) -> None:
    assert_error(http.post("/embeddings", json=body), 400, param=param)


def test_requires_auth(embed_server: LiveServer) -> None:
    with httpx.Client(base_url=embed_server.base_url) as raw:
        response = raw.post("/embeddings", json={"model": LOCAL, "input": "x"})
    assert_error(response, 401)


# ---- an upstream -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="module")
def proxy_server(
    upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    settings = make_settings(
        Path(tmp_path_factory.mktemp("embeddings-upstream")),
        upstream_base_url=upstream.base_url,
        upstream_api_key=UPSTREAM_KEY,
        upstream_max_retries=2,
    )
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def proxy(proxy_server: LiveServer, upstream: FakeUpstream) -> Iterator[openai.OpenAI]:
    upstream.replies.clear()
    upstream.requests.clear()
    with sdk_client(proxy_server) as sdk:
        yield sdk


def embedding_calls(upstream: FakeUpstream) -> list[dict[str, object]]:
    return [r.body for r in upstream.requests if r.path.endswith("/embeddings")]


def test_upstream_proxied(proxy: openai.OpenAI, upstream: FakeUpstream) -> None:
    texts = ["first text", "second text"]
    response = proxy.embeddings.create(
        model="text-embedding-3-small", input=texts, encoding_format="float"
    )
    assert response.model == "text-embedding-3-small"
    expected = np.array([fake_embedding(t) for t in texts], dtype=np.float32)
    assert np.array_equal(matrix(response), expected)
    assert response.usage.prompt_tokens == 4
    (call,) = [r for r in upstream.requests if r.path.endswith("/embeddings")]
    assert call.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert call.body == {
        "model": "text-embedding-3-small",
        "input": texts,
        "encoding_format": "float",
    }


def test_upstream_base64(proxy_server: LiveServer, upstream: FakeUpstream) -> None:
    # The gateway always asks its upstream for floats and encodes them for the client.
    upstream.requests.clear()
    with sdk_client(proxy_server, strict=False) as sdk:
        response = sdk.embeddings.create(model="text-embedding-3-small", input="as base64")
    assert response.data[0].embedding == np.float32(fake_embedding("as base64")).tolist()
    assert [call["encoding_format"] for call in embedding_calls(upstream)] == ["float"]


def test_upstream_token_arrays_and_dimensions(proxy: openai.OpenAI, upstream: FakeUpstream) -> None:
    response = proxy.embeddings.create(
        model="text-embedding-3-large",
        input=[[1, 2, 3], [4]],
        dimensions=16,
        encoding_format="float",
    )
    assert [len(item.embedding) for item in response.data] == [16, 16]
    assert embedding_calls(upstream) == [
        {
            "model": "text-embedding-3-large",
            "input": [[1, 2, 3], [4]],
            "encoding_format": "float",
            "dimensions": 16,
        }
    ]


def test_local_model_still_local_with_upstream(
    proxy: openai.OpenAI, upstream: FakeUpstream
) -> None:
    response = proxy.embeddings.create(
        model=LOCAL, input="served in-process", encoding_format="float"
    )
    assert len(response.data[0].embedding) == 384
    assert embedding_calls(upstream) == []


def test_upstream_retries_429(proxy: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(429, times=2, headers={"Retry-After": "0"}))
    response = proxy.embeddings.create(
        model="text-embedding-3-small", input="retried", encoding_format="float"
    )
    assert len(response.data) == 1
    assert len(embedding_calls(upstream)) == 3


def test_upstream_errors(proxy: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.queue(error_reply(400, "This model's maximum context length is 8192 tokens."))
    with pytest.raises(openai.BadRequestError) as bad:
        proxy.embeddings.create(model="text-embedding-3-small", input="too long")
    assert "8192" in bad.value.message
    upstream.queue(error_reply(429, times=3, headers={"Retry-After": "0"}))
    with pytest.raises(openai.RateLimitError):
        proxy.embeddings.create(model="text-embedding-3-small", input="throttled")
    # The upstream's credentials problem is the operator's: the client learns nothing more.
    upstream.queue(error_reply(401, f"Incorrect API key provided: {UPSTREAM_KEY}."))
    with pytest.raises(openai.InternalServerError) as auth:
        proxy.embeddings.create(model="text-embedding-3-small", input="x")
    assert UPSTREAM_KEY not in str(auth.value.body)
    assert "credentials" in auth.value.message


def test_upstream_key_never_leaks(proxy_server: LiveServer, upstream: FakeUpstream) -> None:
    # A key echoed in the upstream's error body is scrubbed before the client sees it.
    upstream.replies.clear()
    upstream.queue(error_reply(400, f"Bad request made with key {UPSTREAM_KEY}."))
    key = proxy_server.new_key("proj_" + secrets.token_hex(6))
    with raw_client(proxy_server, key) as raw:
        response = raw.post("/embeddings", json={"model": "text-embedding-3-small", "input": "x"})
    error = assert_error(response, 400)
    assert UPSTREAM_KEY not in response.text
    assert "***" in error["message"]
