"""Builds the backend registry from settings: upstreams, the fallback upstream, aliases."""

from __future__ import annotations

from assistd.backends.local import LocalBackend
from assistd.backends.local_model import BUNDLED_NAME, local_specs
from assistd.backends.openai_compat import OpenAICompatBackend
from assistd.backends.registry import BackendRegistry
from assistd.config import Settings
from assistd.errors import NotFoundError


def build_registry(settings: Settings, registry: BackendRegistry | None = None) -> BackendRegistry:
    """Register one ``OpenAICompatBackend`` per configured upstream, then the aliases.

    Local models (the bundled one, ``local_models``) are registered first; none is loaded
    until its first request. The bundled one's package is optional: without it, its name
    (and every alias that would point at it) is listed in ``registry.missing``. With no
    fallback upstream, the catalogue's well-known names (``models``) that no upstream serves
    become aliases of ``default_local_model``.

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
    specs, missing = local_specs(settings)
    if missing is not None:
        registry.missing[BUNDLED_NAME] = missing
    for spec in specs:
        registry.add(
            spec.name,
            LocalBackend(spec),
            owned_by="assistd-local",
            context_window=spec.context_size,
        )
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
    _alias_local(settings, registry)
    # In file order, so an alias may point at an alias defined above it.
    for alias, target in settings.model_aliases.items():
        if target in registry.missing:
            registry.routes.pop(alias, None)
            registry.missing[alias] = registry.missing[target]
            continue
        try:
            route = registry.resolve(target)
        except NotFoundError:
            raise ValueError(
                f"model_aliases: '{alias}' points at '{target}', which no backend serves"
            ) from None
        registry.add(
            alias,
            route.backend,
            upstream_model=route.upstream_model,
            owned_by=route.owned_by,
            context_window=route.context_window,
            alias_of=target,
        )
    return registry


def _alias_local(settings: Settings, registry: BackendRegistry) -> None:
    """Point the well-known model names at the default local model when nothing serves them."""
    if not settings.local_aliases or registry.fallback is not None:
        return
    local = [r for r in registry.listed() if isinstance(r.backend, LocalBackend)]
    target = settings.default_local_model or (local[0].id if local else None)
    if target is None and BUNDLED_NAME in registry.missing:
        target = BUNDLED_NAME
    if target is None:
        return
    if target in registry.missing:
        # Told how to install the model rather than that the name does not exist.
        for name in settings.model_ids:
            if name not in registry.routes:
                registry.missing.setdefault(name, registry.missing[target])
        return
    route = registry.routes.get(target)
    if route is None or not isinstance(route.backend, LocalBackend):
        raise ValueError(f"default_local_model: '{target}' is not a local model")
    for name in settings.model_ids:
        if name not in registry.routes:
            registry.add(
                name,
                route.backend,
                upstream_model=route.upstream_model,
                owned_by=route.owned_by,
                context_window=route.context_window,
                alias_of=target,
            )
