"""Turning a store page into the API's list envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from assistd.protocol.common import ListResponse
from assistd.store.repository import Page, Row

T = TypeVar("T")


def list_response(page: Page, convert: Callable[[Row], T]) -> ListResponse[T]:
    data = [convert(row) for row in page.rows]
    return ListResponse[T](
        data=data,
        first_id=page.rows[0]["id"] if page.rows else None,
        last_id=page.rows[-1]["id"] if page.rows else None,
        has_more=page.has_more,
    )
