"""The model catalogue served by ``/v1/models``: configured ids and the registry's routes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

from assistd.backends.local_model import BUNDLED_INSTALL, BUNDLED_NAME
from assistd.backends.registry import BackendRegistry
from assistd.errors import NotFoundError
from assistd.protocol.models import AliasModelObject, ModelList, ModelObject

# A fixed timestamp: the catalogue is configuration, not data, and must not change per call.
CATALOGUE_CREATED = 1_700_000_000


class Listed(NamedTuple):
    """A servable model name as the catalogue shows it."""

    id: str
    owned_by: str
    alias_of: str | None = None


class ModelService:
    """Catalogue ids keep their configured order; served names follow. An id that a route
    serves is shown as that route (with ``alias_of`` when it is an alias)."""

    def __init__(
        self,
        model_ids: list[str],
        registry: BackendRegistry | None = None,
        extra: Iterable[Listed] = (),
    ) -> None:
        served = (
            [Listed(r.id, r.owned_by, r.alias_of) for r in registry.listed()] if registry else []
        )
        # What /healthz says of the bundled model: nothing when it is off (or the registry was
        # not built from settings), else whether its package is installed.
        self.embedded: str | None = None
        if registry is not None and BUNDLED_NAME in registry.missing:
            self.embedded = f"missing: {BUNDLED_INSTALL}"
        elif registry is not None and BUNDLED_NAME in registry.routes:
            self.embedded = "installed"
        by_id = {m.id: m for m in [*served, *extra]}
        self._models: dict[str, ModelObject] = {}
        for model_id in model_ids:
            self._models[model_id] = _wire(by_id.get(model_id, Listed(model_id, "assistd")))
        for listed in by_id.values():
            self._models.setdefault(listed.id, _wire(listed))

    def health(self) -> dict[str, str]:
        return {} if self.embedded is None else {"embedded_model": self.embedded}

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


def _wire(listed: Listed) -> ModelObject:
    if listed.alias_of is not None:
        return AliasModelObject(
            id=listed.id,
            created=CATALOGUE_CREATED,
            owned_by=listed.owned_by,
            alias_of=listed.alias_of,
        )
    return ModelObject(id=listed.id, created=CATALOGUE_CREATED, owned_by=listed.owned_by)
