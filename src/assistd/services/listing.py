"""Turning a store page into the API's list envelope."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from assistd.protocol.common import ListResponse
from assistd.store.repository import Page

T = TypeVar("T")
Item = TypeVar("Item")


def _id(item: Any) -> str:
    return str(item["id"] if isinstance(item, Mapping) else item.id)


def list_response(page: Page[Item], convert: Callable[[Item], T]) -> ListResponse[T]:
    data = [convert(item) for item in page.rows]
    return ListResponse[T](
        data=data,
        first_id=_id(page.rows[0]) if page.rows else None,
        last_id=_id(page.rows[-1]) if page.rows else None,
        has_more=page.has_more,
    )
