"""Builds the embedder registry from settings."""

from __future__ import annotations

from assistd.config import Settings
from assistd.embeddings.base import EmbedderRegistry
from assistd.embeddings.local import MODEL_NAME, LocalEmbedder
from assistd.embeddings.upstream import UpstreamEmbedder

# OpenAI's embedding model names. With no upstream to send them to, they are served by the
# local model so that tutorials and libraries that hard-code them run offline; the vectors
# are all-MiniLM-L6-v2's (384 dimensions), not OpenAI's.
OFFLINE_ALIASES = ("text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")


def build_embedders(settings: Settings) -> EmbedderRegistry:
    """The local embedder (``local_embedder``), the upstream fallback, the offline aliases.

    Nothing is loaded here: the local model loads on its first request.
    """
    registry = EmbedderRegistry()
    if settings.local_embedder:
        local = LocalEmbedder()
        registry.add(MODEL_NAME, local)
        if not settings.upstream_base_url:
            for alias in OFFLINE_ALIASES:
                registry.add(alias, local, alias_of=MODEL_NAME)
    if settings.upstream_base_url:
        registry.fallback = UpstreamEmbedder(
            settings.upstream_base_url,
            settings.upstream_api_key,
            timeout=settings.upstream_timeout_seconds,
            max_retries=settings.upstream_max_retries,
            name="upstream",
        )
    return registry
