"""The model catalogue served by ``/v1/models``: configured ids and the registry's routes."""

from __future__ import annotations

from assistd.backends.registry import BackendRegistry
from assistd.errors import NotFoundError
from assistd.protocol.models import ModelList, ModelObject

# A fixed timestamp: the catalogue is configuration, not data, and must not change per call.
CATALOGUE_CREATED = 1_700_000_000


class ModelService:
    def __init__(self, model_ids: list[str], registry: BackendRegistry | None = None) -> None:
        self._models = {
            m: ModelObject(id=m, created=CATALOGUE_CREATED, owned_by="assistd") for m in model_ids
        }
        for route in registry.listed() if registry is not None else []:
            self._models.setdefault(
                route.id,
                ModelObject(id=route.id, created=CATALOGUE_CREATED, owned_by=route.owned_by),
            )

    def list(self) -> ModelList:
        return ModelList(data=list(self._models.values()))

    def get(self, model: str) -> ModelObject:
        found = self._models.get(model)
        if found is None:
            raise NotFoundError(
                f"The model '{model}' does not exist or you do not have access to it.",
                param="model",
                code="model_not_found",
            )
        return found
