"""Token windows over a document's text, the way OpenAI's vector stores chunk files.

OpenAI splits a file into windows of ``max_chunk_size_tokens`` that overlap by
``chunk_overlap_tokens`` (``auto`` is 800/400), counted with its own tokenizer; we count
with ``cl100k_base`` so chunk sizes, and so what fits in a prompt, match what clients see
there.

A BPE token can hold part of a multi-byte character, so a window cut at any token could
split an emoji or a CJK character in two. Window edges are moved to the nearest token
boundary that is also a character boundary, which makes every chunk an exact slice of the
original text (``text[start_char:end_char]``) rather than a lossy decode.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from assistd.errors import InvalidRequestError
from assistd.tokenizer import encoding

MIN_CHUNK_SIZE_TOKENS = 100
MAX_CHUNK_SIZE_TOKENS = 4096
DEFAULT_ENCODING = "cl100k_base"


@dataclass(frozen=True, slots=True)
class ChunkingStrategy:
    """A resolved static strategy; ``auto`` resolves to the 800/400 default.

    Vector store file objects always report the resolved strategy as ``static``, so
    there is no separate "auto" value to carry around after a request is validated.
    """

    max_chunk_size_tokens: int = 800
    chunk_overlap_tokens: int = 400

    def to_wire(self) -> dict[str, Any]:
        """The ``chunking_strategy`` of a vector store file object."""
        return {
            "type": "static",
            "static": {
                "max_chunk_size_tokens": self.max_chunk_size_tokens,
                "chunk_overlap_tokens": self.chunk_overlap_tokens,
            },
        }


AUTO_CHUNKING_STRATEGY = ChunkingStrategy()


@dataclass(frozen=True, slots=True)
class Chunk:
    """One window: ``text == source[start_char:end_char]`` and it holds ``token_count`` tokens."""

    index: int
    text: str
    start_token: int
    token_count: int
    start_char: int
    end_char: int


def _integer(value: object, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequestError(
            f"Invalid type for '{param}': expected an integer, but got "
            f"{_json_type(value)} instead.",
            param=param,
            code="invalid_type",
        )
    return value


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a decimal" if isinstance(value, float) else "an integer"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def validate_chunking_strategy(
    max_chunk_size_tokens: object,
    chunk_overlap_tokens: object,
    *,
    param: str = "chunking_strategy",
) -> ChunkingStrategy:
    """Check a ``static`` strategy's two numbers; ``param`` is the strategy's own path.

    The messages follow the wording of the request validator, so a bad bound reads the
    same whether pydantic or this check caught it; the half-size rule has no schema form.
    """
    size_param = f"{param}.static.max_chunk_size_tokens"
    overlap_param = f"{param}.static.chunk_overlap_tokens"
    size = _integer(max_chunk_size_tokens, size_param)
    overlap = _integer(chunk_overlap_tokens, overlap_param)
    if size < MIN_CHUNK_SIZE_TOKENS:
        raise InvalidRequestError(
            f"Invalid '{size_param}': integer below minimum value. Expected a value >= "
            f"{MIN_CHUNK_SIZE_TOKENS}, but got {size} instead.",
            param=size_param,
            code="integer_below_min_value",
        )
    if size > MAX_CHUNK_SIZE_TOKENS:
        raise InvalidRequestError(
            f"Invalid '{size_param}': integer above maximum value. Expected a value <= "
            f"{MAX_CHUNK_SIZE_TOKENS}, but got {size} instead.",
            param=size_param,
            code="integer_above_max_value",
        )
    if overlap < 0:
        raise InvalidRequestError(
            f"Invalid '{overlap_param}': integer below minimum value. Expected a value >= 0, "
            f"but got {overlap} instead.",
            param=overlap_param,
            code="integer_below_min_value",
        )
    if overlap * 2 > size:
        raise InvalidRequestError(
            f"Invalid '{overlap_param}': chunk_overlap_tokens must not exceed half of "
            f"max_chunk_size_tokens ({size // 2}), but got {overlap} instead.",
            param=overlap_param,
            code="invalid_value",
        )
    return ChunkingStrategy(size, overlap)


def resolve_chunking_strategy(
    value: Mapping[str, Any] | None, *, param: str = "chunking_strategy"
) -> ChunkingStrategy:
    """A request's ``chunking_strategy`` (absent, ``auto`` or ``static``) as a strategy."""
    if value is None:
        return AUTO_CHUNKING_STRATEGY
    kind = value.get("type")
    if kind == "auto":
        return AUTO_CHUNKING_STRATEGY
    if kind != "static":
        shown = f"'{kind}'" if isinstance(kind, str) else _json_type(kind)
        raise InvalidRequestError(
            f"Invalid value for '{param}.type': {shown}. Supported values are: 'auto' and "
            "'static'.",
            param=f"{param}.type",
            code="invalid_value",
        )
    static = value.get("static")
    if not isinstance(static, Mapping):
        raise InvalidRequestError(
            f"Missing required parameter: '{param}.static'.",
            param=f"{param}.static",
            code="missing_required_parameter",
        )
    for field in ("max_chunk_size_tokens", "chunk_overlap_tokens"):
        if field not in static:
            raise InvalidRequestError(
                f"Missing required parameter: '{param}.static.{field}'.",
                param=f"{param}.static.{field}",
                code="missing_required_parameter",
            )
    return validate_chunking_strategy(
        static["max_chunk_size_tokens"], static["chunk_overlap_tokens"], param=param
    )


def _char_boundaries(data: bytes, offsets: list[int]) -> list[bool]:
    """Whether each token offset (a byte offset) falls between two characters."""
    size = len(data)
    return [offset >= size or (data[offset] & 0xC0) != 0x80 for offset in offsets]


def _snap_end(end: int, start: int, whole: list[bool]) -> int:
    back = end
    while back > start and not whole[back]:
        back -= 1
    if back > start:
        return back
    # No character boundary in the window (only possible for tiny windows): grow instead.
    while not whole[end]:
        end += 1
    return end


def _snap_start(start: int, limit: int, whole: list[bool]) -> int:
    while start < limit and not whole[start]:
        start += 1
    return start


def chunk_text(
    text: str,
    strategy: ChunkingStrategy = AUTO_CHUNKING_STRATEGY,
    encoding_name: str = DEFAULT_ENCODING,
) -> list[Chunk]:
    """Split ``text`` into overlapping token windows; empty text gives no chunks.

    Each window starts ``chunk_overlap_tokens`` before the previous one ended, and the
    last one stops at the end of the text (no trailing window that only repeats overlap).
    """
    if not text:
        return []
    size = max(1, strategy.max_chunk_size_tokens)
    overlap = min(max(0, strategy.chunk_overlap_tokens), size // 2)
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from a JSON "\ud800" escape, say) cannot be tokenised as they are;
        # "?" replaces each one character for one character, so offsets stay valid.
        text = text.encode("utf-8", "replace").decode("utf-8")
        data = text.encode("utf-8")
    tokens = encoding(encoding_name).encode(text, disallowed_special=())
    if not tokens:
        return []
    pieces = encoding(encoding_name).decode_tokens_bytes(tokens)
    # offsets[i] is the byte where token i starts; offsets[len(tokens)] is the end.
    offsets = [0, *itertools.accumulate(len(piece) for piece in pieces)]
    whole = _char_boundaries(data, offsets)
    count = len(tokens)

    windows: list[tuple[int, int]] = []
    start = 0
    while True:
        end = count if start + size >= count else _snap_end(start + size, start, whole)
        windows.append((start, end))
        if end >= count:
            break
        start = _snap_start(max(end - overlap, start + 1), end, whole)

    chars = _char_offsets(data, sorted({offsets[i] for window in windows for i in window}))
    chunks: list[Chunk] = []
    for index, (first, last) in enumerate(windows):
        start_char, end_char = chars[offsets[first]], chars[offsets[last]]
        chunks.append(
            Chunk(
                index=index,
                text=text[start_char:end_char],
                start_token=first,
                token_count=last - first,
                start_char=start_char,
                end_char=end_char,
            )
        )
    return chunks


def _char_offsets(data: bytes, byte_offsets: list[int]) -> dict[int, int]:
    """Character offsets of sorted byte offsets, decoding each stretch between them once."""
    result: dict[int, int] = {}
    previous_byte = previous_char = 0
    for offset in byte_offsets:
        previous_char += len(data[previous_byte:offset].decode("utf-8"))
        previous_byte = offset
        result[offset] = previous_char
    return result


__all__ = [
    "AUTO_CHUNKING_STRATEGY",
    "MAX_CHUNK_SIZE_TOKENS",
    "MIN_CHUNK_SIZE_TOKENS",
    "Chunk",
    "ChunkingStrategy",
    "chunk_text",
    "resolve_chunking_strategy",
    "validate_chunking_strategy",
]
