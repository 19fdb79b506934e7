"""Token chunking: exact window sizes and overlaps, validation, Unicode safety."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from assistd.errors import InvalidRequestError
from assistd.retrieval.chunking import (
    AUTO_CHUNKING_STRATEGY,
    ChunkingStrategy,
    chunk_text,
    resolve_chunking_strategy,
    validate_chunking_strategy,
)
from assistd.tokenizer import encoding

ENC = encoding("cl100k_base")
# " word" is one cl100k token, so N of them is exactly N tokens.
WORD = " word"


def words(count: int) -> str:
    return WORD * count


def test_auto_default_is_800_400() -> None:
    assert ChunkingStrategy(800, 400) == AUTO_CHUNKING_STRATEGY
    assert resolve_chunking_strategy(None) == AUTO_CHUNKING_STRATEGY
    assert resolve_chunking_strategy({"type": "auto"}) == AUTO_CHUNKING_STRATEGY
    assert AUTO_CHUNKING_STRATEGY.to_wire() == {
        "type": "static",
        "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
    }


def test_sizes_and_overlaps_are_exact_in_tokens() -> None:
    assert len(ENC.encode(words(2000))) == 2000
    chunks = chunk_text(words(2000), ChunkingStrategy(800, 400))
    assert [(c.start_token, c.token_count) for c in chunks] == [(0, 800), (400, 800), (800, 800),
                                                               (1200, 800)]  # fmt: skip
    assert [c.index for c in chunks] == [0, 1, 2, 3]
    for chunk in chunks:
        assert chunk.text == words(chunk.token_count)
        assert len(ENC.encode(chunk.text)) == chunk.token_count


def test_last_chunk_stops_at_the_end_without_a_redundant_tail() -> None:
    chunks = chunk_text(words(1000), AUTO_CHUNKING_STRATEGY)
    assert [(c.start_token, c.token_count) for c in chunks] == [(0, 800), (400, 600)]
    chunks = chunk_text(words(250), ChunkingStrategy(100, 0))
    assert [(c.start_token, c.token_count) for c in chunks] == [(0, 100), (100, 100), (200, 50)]
    assert "".join(c.text for c in chunks) == words(250)


def test_short_text_is_one_chunk_and_empty_text_none() -> None:
    chunks = chunk_text("Hello, world.")
    assert len(chunks) == 1
    assert chunks[0].text == "Hello, world."
    assert (chunks[0].start_char, chunks[0].end_char) == (0, 13)
    assert chunk_text("") == []


def test_char_offsets_slice_the_original_text() -> None:
    text = "Ünïcödé façade — " * 300 + "end"
    chunks = chunk_text(text, ChunkingStrategy(100, 50))
    assert len(chunks) > 5
    for chunk in chunks:
        assert text[chunk.start_char : chunk.end_char] == chunk.text
    assert chunks[0].start_char == 0
    assert chunks[-1].end_char == len(text)


def test_multibyte_characters_are_never_split() -> None:
    # Rare CJK characters and emoji take several byte-level tokens each in cl100k_base.
    text = "𠀋𡈽𡌛𡑮𡢽𠮟🧑‍🤝‍🧑🏳️‍🌈" * 200
    tokens = ENC.encode(text)
    pieces = ENC.decode_tokens_bytes(tokens)
    assert any(len(piece.decode("utf-8", "ignore")) == 0 for piece in pieces)  # partial chars
    chunks = chunk_text(text, ChunkingStrategy(101, 37))
    assert len(chunks) > 3
    for previous, chunk in itertools.pairwise(chunks):
        assert chunk.start_token > previous.start_token
        assert chunk.start_token <= previous.start_token + previous.token_count
    for chunk in chunks:
        assert "\ufffd" not in chunk.text
        assert chunk.token_count <= 101
        assert text[chunk.start_char : chunk.end_char] == chunk.text
        assert ENC.decode(tokens[chunk.start_token : chunk.start_token + chunk.token_count]) == (
            chunk.text
        )
    assert chunks[-1].start_token + chunks[-1].token_count == len(tokens)


def test_lone_surrogates_do_not_break_chunking() -> None:
    text = "before \ud800 after"
    chunks = chunk_text(text)
    assert len(chunks) == 1
    assert chunks[0].text == "before ? after"
    assert chunks[0].end_char == len(text)


def test_special_token_text_is_plain_text() -> None:
    chunks = chunk_text("a <|endoftext|> b")
    assert chunks[0].text == "a <|endoftext|> b"
    assert chunks[0].token_count > 1


def test_deterministic() -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 500
    strategy = ChunkingStrategy(128, 64)
    assert chunk_text(text, strategy) == chunk_text(text, strategy)


def test_other_encoding_can_be_chosen() -> None:
    text = "hello world " * 100
    assert chunk_text(text, ChunkingStrategy(100, 0), "o200k_base")[0].token_count == 100


@pytest.mark.parametrize(
    ("size", "overlap"), [(100, 0), (100, 50), (4096, 2048), (800, 400), (101, 50)]
)
def test_valid_static_strategies(size: int, overlap: int) -> None:
    assert validate_chunking_strategy(size, overlap) == ChunkingStrategy(size, overlap)


@pytest.mark.parametrize(
    ("size", "overlap", "param", "code", "message"),
    [
        (
            99,
            0,
            "chunking_strategy.static.max_chunk_size_tokens",
            "integer_below_min_value",
            "Invalid 'chunking_strategy.static.max_chunk_size_tokens': integer below minimum "
            "value. Expected a value >= 100, but got 99 instead.",
        ),
        (
            4097,
            0,
            "chunking_strategy.static.max_chunk_size_tokens",
            "integer_above_max_value",
            "Invalid 'chunking_strategy.static.max_chunk_size_tokens': integer above maximum "
            "value. Expected a value <= 4096, but got 4097 instead.",
        ),
        (
            800,
            -1,
            "chunking_strategy.static.chunk_overlap_tokens",
            "integer_below_min_value",
            "Invalid 'chunking_strategy.static.chunk_overlap_tokens': integer below minimum "
            "value. Expected a value >= 0, but got -1 instead.",
        ),
        (
            800,
            401,
            "chunking_strategy.static.chunk_overlap_tokens",
            "invalid_value",
            "Invalid 'chunking_strategy.static.chunk_overlap_tokens': chunk_overlap_tokens "
            "must not exceed half of max_chunk_size_tokens (400), but got 401 instead.",
        ),
        (
            "800",
            0,
            "chunking_strategy.static.max_chunk_size_tokens",
            "invalid_type",
            "Invalid type for 'chunking_strategy.static.max_chunk_size_tokens': expected an "
            "integer, but got a string instead.",
        ),
        (
            800,
            True,
            "chunking_strategy.static.chunk_overlap_tokens",
            "invalid_type",
            "Invalid type for 'chunking_strategy.static.chunk_overlap_tokens': expected an "
            "integer, but got a boolean instead.",
        ),
    ],
)
def test_invalid_static_strategies(
    size: Any, overlap: Any, param: str, code: str, message: str
) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_chunking_strategy(size, overlap)
    assert caught.value.status_code == 400
    assert caught.value.param == param
    assert caught.value.code == code
    assert caught.value.message == message


def test_overlap_just_over_half_of_an_odd_size() -> None:
    with pytest.raises(InvalidRequestError):
        validate_chunking_strategy(101, 51)


def test_param_prefix_for_batches() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        validate_chunking_strategy(50, 0, param="files[0].chunking_strategy")
    assert caught.value.param == "files[0].chunking_strategy.static.max_chunk_size_tokens"


def test_resolve_wire_values() -> None:
    numbers = {"max_chunk_size_tokens": 200, "chunk_overlap_tokens": 20}
    static = {"type": "static", "static": numbers}
    assert resolve_chunking_strategy(static) == ChunkingStrategy(200, 20)
    with pytest.raises(InvalidRequestError) as caught:
        resolve_chunking_strategy({"type": "dynamic"})
    assert caught.value.param == "chunking_strategy.type"
    assert caught.value.message == (
        "Invalid value for 'chunking_strategy.type': 'dynamic'. Supported values are: 'auto' "
        "and 'static'."
    )
    with pytest.raises(InvalidRequestError) as caught:
        resolve_chunking_strategy({"type": "static"})
    assert caught.value.param == "chunking_strategy.static"
    assert caught.value.code == "missing_required_parameter"
    with pytest.raises(InvalidRequestError) as caught:
        resolve_chunking_strategy({"type": "static", "static": {"max_chunk_size_tokens": 200}})
    assert caught.value.param == "chunking_strategy.static.chunk_overlap_tokens"
    assert caught.value.message == (
        "Missing required parameter: 'chunking_strategy.static.chunk_overlap_tokens'."
    )
