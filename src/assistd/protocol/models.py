"""Model wire objects (``/v1/models``)."""

from __future__ import annotations

from typing import Literal

from assistd.protocol.common import WireModel


class ModelObject(WireModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(WireModel):
    object: Literal["list"] = "list"
    data: list[ModelObject]
