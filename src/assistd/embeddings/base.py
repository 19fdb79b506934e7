"""The ``Embedder`` interface and the registry that picks one per model name.

Vectors are a float32 ``numpy`` array, one row per input: file search stores them as they
are, and the gateway encodes them for the wire (JSON floats, or base64 of the same
little-endian float32 bytes) without going through Python lists. The local embedder's rows
are L2-normalised (a dot product is the cosine); an upstream's are passed on as it sent
them (OpenAI's are unit length, other servers' may not be).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from assistd.errors import NotFoundError

EmbedderErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_request"]
Vectors = npt.NDArray[np.float32]
# Strings, or token ids (OpenAI's cl100k_base ids) that only upstreams take as they are.
EmbeddingInput = Sequence[str] | Sequence[Sequence[int]]


@dataclass
class EmbeddingResult:
    """``vectors`` has one row per input, in input order; ``prompt_tokens`` counts them all."""

    vectors: Vectors
    prompt_tokens: int


class EmbedderError(Exception):
    """A failed embedding call, classified so the gateway can answer with the right status.

    ``message`` is shown to the client: it never holds a file path or an API key.
    ``invalid_request`` (400) names the offending request field in ``param``.
    """

    def __init__(
        self, message: str, *, code: EmbedderErrorCode = "server_error", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: EmbedderErrorCode = code
        self.param = param


class Embedder(Protocol):
    """Turns texts into vectors.

    ``dimensions`` is the width of the vectors it returns by default, or ``None`` when it
    is not known before the first call (an upstream). ``accepts_token_ids`` says whether
    ``embed`` takes token-id arrays as they are; the gateway decodes them otherwise.
    """

    accepts_token_ids: ClassVar[bool]

    @property
    def dimensions(self) -> int | None: ...

    async def embed(
        self,
        texts: EmbeddingInput,
        *,
        model: str | None = None,
        dimensions: int | None = None,
    ) -> EmbeddingResult:
        """Embed every input, in order; raise ``EmbedderError`` on failure.

        Args:
            texts: Non-empty strings (or token-id arrays where ``accepts_token_ids``).
            model: The name a shared upstream is asked for; a local embedder ignores it.
            dimensions: Ask for shorter vectors; an embedder that cannot honour it raises
                ``EmbedderError`` with code ``invalid_request`` and param ``dimensions``.
        """
        ...

    async def aclose(self) -> None:
        """Release sessions, threads and connections."""
        ...


class EmbedderListing(NamedTuple):
    """A name ``/v1/models`` lists: who serves it, and the name it stands for, if an alias."""

    id: str
    owned_by: str
    alias_of: str | None


@dataclass
class EmbedderRoute:
    id: str
    embedder: Embedder
    owned_by: str = "assistd"
    alias_of: str | None = None

    @property
    def upstream_model(self) -> str:
        """The name the embedder is asked for: an alias asks for the model it stands for."""
        return self.alias_of or self.id


@dataclass
class EmbedderRegistry:
    """Exact names first, then a fallback embedder (an upstream) for any other name."""

    routes: dict[str, EmbedderRoute] = field(default_factory=dict)
    fallback: Embedder | None = None

    def add(
        self,
        name: str,
        embedder: Embedder,
        *,
        owned_by: str = "assistd",
        alias_of: str | None = None,
    ) -> None:
        self.routes[name] = EmbedderRoute(name, embedder, owned_by, alias_of)

    def resolve(self, name: str) -> EmbedderRoute:
        route = self.routes.get(name)
        if route is not None:
            return route
        if self.fallback is not None:
            return EmbedderRoute(name, self.fallback, "upstream")
        raise NotFoundError(
            f"The model '{name}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def listed(self) -> list[EmbedderListing]:
        return [EmbedderListing(r.id, r.owned_by, r.alias_of) for r in self.routes.values()]

    async def aclose(self) -> None:
        embedders = {id(r.embedder): r.embedder for r in self.routes.values()}
        if self.fallback is not None:
            embedders[id(self.fallback)] = self.fallback
        for embedder in embedders.values():
            await embedder.aclose()
