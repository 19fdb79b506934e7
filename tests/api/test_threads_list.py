"""``GET /v1/threads``: an assistd extension (OpenAI cannot list threads), cursor-paged like
every other list and scoped to the key's project. The SDK has no ``threads.list``, so the
tests call it through the SDK's generic list request (strict validation) and raw HTTP."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest
from openai.pagination import SyncCursorPage
from openai.types.beta import Thread

from tests.api.test_pagination import ids_of, list_page
from tests.conftest import ClientFactory, assert_error

BETA = {"OpenAI-Beta": "assistants=v2"}


def sdk_list(client: openai.OpenAI, **params: Any) -> SyncCursorPage[Thread]:
    """One page as the SDK's own list methods request it."""
    return client.get_api_list(
        "/threads",
        model=Thread,
        page=SyncCursorPage[Thread],
        options={"params": params, "headers": BETA},
    )


def make_threads(client: openai.OpenAI, count: int) -> list[str]:
    """``count`` threads made back to back; their ids in creation order."""
    return [client.beta.threads.create(metadata={"n": str(i)}).id for i in range(count)]


@pytest.fixture
def made(client: openai.OpenAI) -> list[str]:
    return make_threads(client, 7)


def test_newest_first_by_default_as_thread_objects(
    client: openai.OpenAI, http: httpx.Client, made: list[str]
) -> None:
    page = sdk_list(client)
    assert [t.id for t in page.data] == made[::-1]
    assert page.has_more is False
    # The very objects retrieve answers.
    for listed in page.data:
        assert listed == client.beta.threads.retrieve(listed.id)
    assert page.data[0].metadata == {"n": "6"}
    body = list_page(http, "/threads")
    assert body["first_id"] == made[-1]
    assert body["last_id"] == made[0]
    assert body["data"][0]["object"] == "thread"


def test_order_asc_and_limit(http: httpx.Client, made: list[str]) -> None:
    assert ids_of(list_page(http, "/threads", order="asc")) == made
    body = list_page(http, "/threads", limit=3)
    assert ids_of(body) == made[::-1][:3]
    assert body["has_more"] is True
    body = list_page(http, "/threads", order="asc", limit=7)
    assert ids_of(body) == made
    assert body["has_more"] is False


def test_sdk_auto_paging_walks_every_thread(client: openai.OpenAI, made: list[str]) -> None:
    assert [t.id for t in sdk_list(client, limit=2)] == made[::-1]
    assert [t.id for t in sdk_list(client, limit=3, order="asc")] == made


def test_after_and_before(http: httpx.Client, made: list[str]) -> None:
    desc = made[::-1]
    body = list_page(http, "/threads", limit=2, after=desc[1])
    assert ids_of(body) == desc[2:4]
    assert body["has_more"] is True
    body = list_page(http, "/threads", limit=5, after=desc[3])
    assert ids_of(body) == desc[4:7]
    assert body["has_more"] is False
    # ``before`` alone is the previous page, still newest first.
    body = list_page(http, "/threads", limit=2, before=desc[4])
    assert ids_of(body) == desc[2:4]
    assert body["has_more"] is True
    body = list_page(http, "/threads", limit=5, before=desc[2])
    assert ids_of(body) == desc[0:2]
    assert body["has_more"] is False
    body = list_page(http, "/threads", order="asc", limit=2, before=made[5])
    assert ids_of(body) == made[3:5]
    body = list_page(http, "/threads", after=desc[1], before=desc[5])
    assert ids_of(body) == desc[2:5]


def test_walking_forwards_then_back(http: httpx.Client, made: list[str]) -> None:
    pages = [list_page(http, "/threads", limit=3)]
    while pages[-1]["has_more"]:
        pages.append(list_page(http, "/threads", limit=3, after=pages[-1]["last_id"]))
    assert [ids_of(p) for p in pages] == [made[6:3:-1], made[3:0:-1], made[0:1]]
    back = list_page(http, "/threads", limit=3, before=pages[-1]["first_id"])
    assert ids_of(back) == ids_of(pages[1])
    back = list_page(http, "/threads", limit=3, before=back["first_id"])
    assert ids_of(back) == ids_of(pages[0])
    assert back["has_more"] is False


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc"])
def test_limit_out_of_range(http: httpx.Client, limit: str) -> None:
    assert_error(http.get("/threads", params={"limit": limit}), 400, param="limit")


def test_sdk_limit_errors_and_bounds(client: openai.OpenAI, http: httpx.Client) -> None:
    for limit in (0, 101):
        with pytest.raises(openai.BadRequestError) as caught:
            sdk_list(client, limit=limit)
        assert caught.value.param == "limit"
        assert caught.value.code in ("integer_below_min_value", "integer_above_max_value")
    made = make_threads(client, 3)
    assert ids_of(list_page(http, "/threads", limit=1)) == made[-1:]
    assert ids_of(list_page(http, "/threads", limit=100)) == made[::-1]


def test_invalid_order_and_cursor(http: httpx.Client) -> None:
    assert_error(http.get("/threads", params={"order": "newest"}), 400, param="order")
    cursor = "asst_0000000001abcdefghijklmn"
    error = assert_error(
        http.get("/threads", params={"after": cursor}), 400, param="after", code="invalid_value"
    )
    assert error["message"] == f"Invalid 'after': '{cursor}' is not a valid thread id."


def test_empty_project(http: httpx.Client, client: openai.OpenAI) -> None:
    body = list_page(http, "/threads")
    assert body == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    assert list(sdk_list(client)) == []


def test_other_projects_threads_never_listed(
    client: openai.OpenAI, make_client: ClientFactory, made: list[str]
) -> None:
    other = make_client()
    theirs = make_threads(other, 2)
    assert [t.id for t in sdk_list(other)] == theirs[::-1]
    assert [t.id for t in sdk_list(client, limit=100)] == made[::-1]
    # A cursor of the other project's thread only positions the page: nothing of theirs.
    mine = [t.id for t in sdk_list(client, after=theirs[0])]
    assert mine == made[::-1]
    assert [t.id for t in sdk_list(other, before=made[0])] == theirs[::-1]


def test_deleted_threads_are_gone(
    client: openai.OpenAI, http: httpx.Client, made: list[str]
) -> None:
    client.beta.threads.delete(made[3])
    client.beta.threads.delete(made[6])
    assert [t.id for t in sdk_list(client)] == [made[5], made[4], made[2], made[1], made[0]]
    # The deleted thread's id still works as a cursor.
    assert ids_of(list_page(http, "/threads", limit=2, after=made[3])) == [made[2], made[1]]
    assert ids_of(list_page(http, "/threads", before=made[3])) == [made[5], made[4]]


def test_thread_routes_beside_the_list_still_work(client: openai.OpenAI) -> None:
    # ``GET /threads`` sits beside ``/threads/{id}`` and runs' ``/threads/runs``.
    thread = client.beta.threads.create()
    assert client.beta.threads.retrieve(thread.id).id == thread.id
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve("runs")
    assert client.beta.threads.runs.list(thread.id).data == []
