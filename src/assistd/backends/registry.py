"""Which backend serves which model name."""

from __future__ import annotations

from dataclasses import dataclass, field

from assistd.backends.base import ModelBackend
from assistd.errors import InvalidRequestError, NotFoundError


@dataclass
class ModelRoute:
    """A model id as listed by ``/v1/models`` and the backend (and upstream name) serving it."""

    id: str
    backend: ModelBackend
    upstream_model: str
    owned_by: str = "assistd"
    # Tokens the model takes per request, where known (local models); runs truncate to it.
    context_window: int | None = None
    # The model name this one is an alias of, shown by /v1/models.
    alias_of: str | None = None


@dataclass
class BackendRegistry:
    """Exact names first, then names known but not installed, then a fallback backend for
    any other name (an upstream)."""

    routes: dict[str, ModelRoute] = field(default_factory=dict)
    fallback: ModelBackend | None = None
    # Names a local model would serve were it installed, and what to do about it: asked
    # for, they answer 400 with that reason rather than reaching the fallback upstream.
    missing: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        model: str,
        backend: ModelBackend,
        *,
        upstream_model: str | None = None,
        owned_by: str = "assistd",
        context_window: int | None = None,
        alias_of: str | None = None,
    ) -> None:
        self.routes[model] = ModelRoute(
            model, backend, upstream_model or model, owned_by, context_window, alias_of
        )

    def resolve(self, model: str) -> ModelRoute:
        route = self.routes.get(model)
        if route is not None:
            return route
        reason = self.missing.get(model)
        if reason is not None:
            raise InvalidRequestError(
                f"The model '{model}' is not available: {reason}.",
                param="model",
                code="model_not_available",
            )
        if self.fallback is not None:
            return ModelRoute(model, self.fallback, model, "upstream")
        raise NotFoundError(
            f"The model '{model}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )

    def listed(self) -> list[ModelRoute]:
        return list(self.routes.values())

    async def aclose(self) -> None:
        backends = {id(r.backend): r.backend for r in self.routes.values()}
        if self.fallback is not None:
            backends[id(self.fallback)] = self.fallback
        for backend in backends.values():
            await backend.aclose()
