"""Model wire objects (``/v1/models``)."""

from __future__ import annotations

from typing import Literal

from pydantic import SerializeAsAny

from assistd.protocol.common import WireModel


class ModelObject(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class AliasModelObject(ModelObject):
    """A well-known name served by another model (e.g. gpt-4o by the local model offline).

    ``alias_of`` is assistd's addition; the SDK keeps unknown fields in ``model_extra``.
    """

    alias_of: str


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[SerializeAsAny[ModelObject]]
