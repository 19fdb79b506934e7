"""Turning a store page into the API's list envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from assistd.protocol.common import ListResponse
from assistd.store.repository import Page

T = TypeVar("T")


class _Listed(Protocol):
    @property
    def id(self) -> str: ...


Item = TypeVar("Item", bound=_Listed)


def list_response(page: Page[Item], convert: Callable[[Item], T]) -> ListResponse[T]:
    data = [convert(item) for item in page.rows]
    return ListResponse[T](
        data=data,
        first_id=page.rows[0].id if page.rows else None,
        last_id=page.rows[-1].id if page.rows else None,
        has_more=page.has_more,
    )
