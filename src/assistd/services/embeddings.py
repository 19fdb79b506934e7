"""The embeddings gateway: validate the input, pick the embedder, encode the vectors.

Token-id input (OpenAI's ``cl100k_base`` ids) goes to upstreams as it is; an embedder that
only takes text (the local model) gets it decoded back to text first, which is what the
ids stand for.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from assistd.embeddings.base import (
    EmbedderError,
    EmbedderRegistry,
    EmbeddingInput,
    EmbeddingResult,
)
from assistd.errors import APIError, InvalidRequestError, RateLimitError
from assistd.protocol.embeddings import (
    MAX_INPUTS,
    CreateEmbeddingRequest,
    EmbeddingList,
    EmbeddingObject,
    EmbeddingUsage,
)
from assistd.tokenizer import encoding

logger = logging.getLogger(__name__)

TOKEN_ENCODING = "cl100k_base"  # what OpenAI's embedding models read token ids as


class EmbeddingService:
    def __init__(self, embedders: EmbedderRegistry) -> None:
        self.embedders = embedders

    async def create(self, request: CreateEmbeddingRequest) -> EmbeddingList:
        """Embed ``request.input``; the response names the model as the client did.

        Raises:
            NotFoundError: No embedder serves ``request.model`` (404 ``model_not_found``).
            InvalidRequestError: Empty input or item, more than 2048 inputs, token ids
                outside ``cl100k_base``, a ``dimensions`` the model cannot produce, or an
                upstream's own 400.
            RateLimitError: The upstream still answered 429 after the retries.
            APIError: The embedder failed (a 500 with its client-safe message).
        """
        route = self.embedders.resolve(request.model)
        inputs = _inputs(request.input)
        if inputs and not isinstance(inputs[0], str) and not route.embedder.accepts_token_ids:
            inputs = _decode(cast(Sequence[Sequence[int]], inputs))
        try:
            result = await route.embedder.embed(
                inputs, model=route.upstream_model, dimensions=request.dimensions
            )
        except EmbedderError as exc:
            raise _api_error(exc) from None
        return _response(request, result, len(inputs))


def _inputs(value: str | list[Any]) -> EmbeddingInput:
    """The input as a list of texts or of token arrays, each checked by position.

    A list is texts, one token array or several, as its first item says; an item that
    does not follow is refused with its own ``param`` (``input[2]``), as are empty ones.
    """
    if isinstance(value, str) or (value and _is_token(value[0])):
        items, single = [value], True
    else:
        items, single = list(value), False
    if not items:
        raise InvalidRequestError(
            "Invalid 'input': expected a non-empty array of inputs, but got an empty array.",
            param="input",
            code="invalid_value",
        )
    if len(items) > MAX_INPUTS:
        raise InvalidRequestError(
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_INPUTS}, but got an array with length {len(items)} instead.",
            param="input",
            code="array_above_max_length",
        )
    texts = isinstance(items[0], str)
    for position, item in enumerate(items):
        param = "input" if single else f"input[{position}]"
        if texts and not isinstance(item, str):
            raise _invalid_type(param, "a string", item)
        if not texts:
            if not isinstance(item, list):
                raise _invalid_type(param, "an array of token ids", item)
            for at, token in enumerate(item):
                if not _is_token(token):
                    raise _invalid_type(f"{param}[{at}]", "an integer", token)
        if not item:
            noun = "string" if texts else "array of token ids"
            raise InvalidRequestError(
                f"Invalid '{param}': the input cannot be an empty {noun}.",
                param=param,
                code="invalid_value",
            )
    return cast(EmbeddingInput, items)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _invalid_type(param: str, expected: str, value: Any) -> InvalidRequestError:
    # JSON's names for what was sent, as the validation errors of every other route say.
    kinds = [(bool, "a boolean"), (int, "an integer"), (float, "a decimal"), (str, "a string")]
    kinds += [(list, "an array"), (dict, "an object"), (type(None), "null")]
    got = next((name for kind, name in kinds if isinstance(value, kind)), "a value")
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param=param,
        code="invalid_type",
    )


def _decode(arrays: Sequence[Sequence[int]]) -> list[str]:
    """Token-id arrays back to text with ``cl100k_base``; unknown ids are refused."""
    vocabulary = encoding(TOKEN_ENCODING)
    texts: list[str] = []
    for position, tokens in enumerate(arrays):
        ids = list(tokens)
        bad = next(
            (t for t in ids if not isinstance(t, int) or not 0 <= t < vocabulary.n_vocab), None
        )
        if bad is not None:
            raise InvalidRequestError(
                f"Invalid 'input[{position}]': {bad} is not a token id of {TOKEN_ENCODING}.",
                param=f"input[{position}]",
                code="invalid_value",
            )
        try:
            texts.append(vocabulary.decode(ids, errors="replace"))
        except KeyError:  # an id inside the range that the vocabulary leaves unused
            raise InvalidRequestError(
                f"Invalid 'input[{position}]': it holds an id that is not a token of "
                f"{TOKEN_ENCODING}.",
                param=f"input[{position}]",
                code="invalid_value",
            ) from None
    return texts


def _api_error(exc: EmbedderError) -> APIError:
    if exc.code == "invalid_request":
        return InvalidRequestError(exc.message, param=exc.param, code="invalid_value")
    if exc.code == "rate_limit_exceeded":
        return RateLimitError(exc.message, code="rate_limit_exceeded")
    logger.warning("embedding failed: %s", exc.message)
    return APIError(exc.message)


def _response(
    request: CreateEmbeddingRequest, result: EmbeddingResult, count: int
) -> EmbeddingList:
    vectors = result.vectors
    if vectors.ndim != 2 or vectors.shape[0] != count:
        logger.error("embedder returned %s vectors for %d inputs", vectors.shape, count)
        raise APIError("The embedding model returned a malformed result.")
    data: list[EmbeddingObject]
    if request.encoding_format == "base64":
        # What OpenAI sends and the SDK decodes: the little-endian float32 bytes.
        raw = np.ascontiguousarray(vectors, dtype="<f4")
        data = [
            EmbeddingObject(index=i, embedding=base64.b64encode(row.tobytes()).decode("ascii"))
            for i, row in enumerate(raw)
        ]
    else:
        rows: list[list[float]] = vectors.astype(np.float32).tolist()
        data = [EmbeddingObject(index=i, embedding=row) for i, row in enumerate(rows)]
    tokens = result.prompt_tokens
    return EmbeddingList(
        data=data,
        model=request.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
