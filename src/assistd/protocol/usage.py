"""Usage wire objects (``GET /v1/usage``, an assistd extension)."""

from __future__ import annotations

from typing import Literal

from assistd.protocol.common import WireModel


class UsageDaily(WireModel):
    """Tokens the caller's project used with one model on one UTC day."""

    object: Literal["usage.daily"] = "usage.daily"
    date: str  # YYYY-MM-DD, UTC
    model: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # Model calls: one per turn of a run, one per chat completion.
    requests: int


class UsageList(WireModel):
    object: Literal["list"] = "list"
    data: list[UsageDaily]
