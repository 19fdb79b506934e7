"""Builds the backend registry from settings: upstreams, the fallback upstream, aliases."""

from __future__ import annotations

from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.config import Settings
from assistd.errors import NotFoundError


def build_registry(settings: Settings, registry: BackendRegistry | None = None) -> BackendRegistry:
    """Register one ``OpenAICompatBackend`` per configured upstream, then the aliases.

    Args:
        settings: ``upstreams`` give named routes (``owned_by`` is the upstream's name);
            ``upstream_base_url`` becomes the fallback for every other model name;
            ``model_aliases`` map an alias to a model served by either.
        registry: Routes already there (local backends) are kept and may be alias targets.

    Returns:
        The registry; the caller closes it with ``aclose()``.

    Raises:
        ValueError: An alias names a model that nothing serves.
    """
    registry = registry if registry is not None else BackendRegistry()
    for upstream in settings.upstreams:
        backend = OpenAICompatBackend(
            upstream.base_url,
            upstream.api_key,
            timeout=settings.upstream_timeout_seconds,
            max_retries=settings.upstream_max_retries,
            name=upstream.name,
        )
        for model in upstream.models:
            registry.add(model, backend, owned_by=upstream.name)
    if settings.upstream_base_url:
        registry.fallback = OpenAICompatBackend(
            settings.upstream_base_url,
            settings.upstream_api_key,
            timeout=settings.upstream_timeout_seconds,
            max_retries=settings.upstream_max_retries,
            name="upstream",
        )
    # In file order, so an alias may point at an alias defined above it.
    for alias, target in settings.model_aliases.items():
        try:
            route = registry.resolve(target)
        except NotFoundError:
            raise ValueError(
                f"model_aliases: '{alias}' points at '{target}', which no backend serves"
            ) from None
        registry.add(
            alias, route.backend, upstream_model=route.upstream_model, owned_by=route.owned_by
        )
    return registry
