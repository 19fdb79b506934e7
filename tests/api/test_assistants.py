"""Assistants: create, retrieve, list, update, delete and request validation."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import assert_error

FUNCTION_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
FILE_SEARCH_TOOL: dict[str, Any] = {
    "type": "file_search",
    "file_search": {
        "max_num_results": 7,
        "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.25},
    },
}
JSON_SCHEMA_FORMAT: dict[str, Any] = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "description": "A single answer.",
        "schema": {
            "type": "object",
            "properties": {"answer": {"type": "string"}},
            "required": ["answer"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def upload(client: openai.OpenAI, name: str = "a.txt", data: bytes = b"hello") -> str:
    return client.files.create(file=(name, data), purpose="assistants").id


def full_assistant(client: openai.OpenAI, file_id: str) -> openai.types.beta.Assistant:
    return client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        description="Answers maths questions.",
        instructions="You are a personal math tutor.",
        tools=[{"type": "code_interpreter"}, FILE_SEARCH_TOOL, FUNCTION_TOOL],  # type: ignore[list-item]
        tool_resources={"code_interpreter": {"file_ids": [file_id]}},
        metadata={"team": "maths", "level": "2"},
        temperature=0.3,
        top_p=0.9,
        response_format=JSON_SCHEMA_FORMAT,  # type: ignore[arg-type]
        extra_body={"reasoning_effort": "low"},
    )


def expected_full_wire(assistant_id: str, created_at: int, file_id: str) -> dict[str, Any]:
    return {
        "id": assistant_id,
        "object": "assistant",
        "created_at": created_at,
        "name": "Math Tutor",
        "description": "Answers maths questions.",
        "model": "gpt-4o",
        "instructions": "You are a personal math tutor.",
        "tools": [{"type": "code_interpreter"}, FILE_SEARCH_TOOL, FUNCTION_TOOL],
        "tool_resources": {"code_interpreter": {"file_ids": [file_id]}},
        "metadata": {"team": "maths", "level": "2"},
        "temperature": 0.3,
        "top_p": 0.9,
        "response_format": JSON_SCHEMA_FORMAT,
        "reasoning_effort": "low",
    }


# ---- create / retrieve / list ----------------------------------------------------------


def test_create_with_every_field_is_echoed(client: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(client)
    created = full_assistant(client, file_id)

    assert created.id.startswith("asst_")
    assert created.object == "assistant"
    assert created.model == "gpt-4o"
    assert created.name == "Math Tutor"
    assert created.description == "Answers maths questions."
    assert created.instructions == "You are a personal math tutor."
    assert created.metadata == {"team": "maths", "level": "2"}
    assert created.temperature == 0.3
    assert created.top_p == 0.9
    assert [t.type for t in created.tools] == ["code_interpreter", "file_search", "function"]
    search = created.tools[1]
    assert search.type == "file_search"
    assert search.file_search is not None
    assert search.file_search.max_num_results == 7
    assert search.file_search.ranking_options is not None
    assert search.file_search.ranking_options.ranker == "default_2024_08_21"
    assert search.file_search.ranking_options.score_threshold == 0.25
    function = created.tools[2]
    assert function.type == "function"
    assert function.function.name == "get_weather"
    assert function.function.description == "Current weather for a city."
    assert function.function.parameters == FUNCTION_TOOL["function"]["parameters"]
    assert function.function.strict is True
    assert created.tool_resources is not None
    assert created.tool_resources.code_interpreter is not None
    assert created.tool_resources.code_interpreter.file_ids == [file_id]
    assert created.response_format is not None
    assert not isinstance(created.response_format, str)
    assert created.response_format.type == "json_schema"
    assert created.model_extra is not None
    assert created.model_extra.get("reasoning_effort") == "low"

    # The exact wire shape, as stored and echoed.
    wire = http.get(f"/assistants/{created.id}").json()
    assert wire == expected_full_wire(created.id, created.created_at, file_id)


def test_retrieve_and_list_echo_every_field(client: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(client)
    created = full_assistant(client, file_id)

    fetched = client.beta.assistants.retrieve(created.id)
    assert fetched == created
    listed = client.beta.assistants.list()
    assert listed.data == [created]

    expected = expected_full_wire(created.id, created.created_at, file_id)
    assert http.get(f"/assistants/{created.id}").json() == expected
    raw_list = http.get("/assistants").json()
    assert raw_list == {
        "object": "list",
        "data": [expected],
        "first_id": created.id,
        "last_id": created.id,
        "has_more": False,
    }


def test_create_minimal_echoes_defaults(client: openai.OpenAI, http: httpx.Client) -> None:
    created = client.beta.assistants.create(model="gpt-4o-mini")
    assert created.model == "gpt-4o-mini"
    assert created.name is None
    assert created.description is None
    assert created.instructions is None
    assert created.tools == []
    assert created.metadata == {}
    assert created.temperature == 1.0
    assert created.top_p == 1.0
    assert created.response_format == "auto"

    wire = http.get(f"/assistants/{created.id}").json()
    assert wire == {
        "id": created.id,
        "object": "assistant",
        "created_at": created.created_at,
        "name": None,
        "description": None,
        "model": "gpt-4o-mini",
        "instructions": None,
        "tools": [],
        "tool_resources": {},
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "response_format": "auto",
        "reasoning_effort": None,
    }


def test_create_with_explicit_nulls_uses_defaults(http: httpx.Client) -> None:
    response = http.post(
        "/assistants",
        json={
            "model": "gpt-4o",
            "name": None,
            "temperature": None,
            "top_p": None,
            "response_format": None,
            "metadata": None,
            "tools": None,
            "tool_resources": None,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] is None
    assert body["temperature"] == 1.0
    assert body["top_p"] == 1.0
    assert body["response_format"] == "auto"
    assert body["metadata"] == {}
    assert body["tools"] == []
    assert body["tool_resources"] == {}


@pytest.mark.parametrize(
    "response_format",
    ["auto", {"type": "text"}, {"type": "json_object"}, JSON_SCHEMA_FORMAT],
    ids=["auto", "text", "json_object", "json_schema"],
)
def test_response_format_variants_round_trip(
    client: openai.OpenAI, http: httpx.Client, response_format: Any
) -> None:
    created = client.beta.assistants.create(model="gpt-4o", response_format=response_format)
    if response_format == "auto":
        assert created.response_format == "auto"
    else:
        assert not isinstance(created.response_format, str)
        assert created.response_format is not None
        assert created.response_format.type == response_format["type"]
    assert http.get(f"/assistants/{created.id}").json()["response_format"] == response_format


def test_file_search_tool_without_settings_round_trips(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    created = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "file_search"}])
    assert [t.type for t in created.tools] == ["file_search"]
    assert http.get(f"/assistants/{created.id}").json()["tools"] == [{"type": "file_search"}]


def test_list_orders_by_creation(client: openai.OpenAI) -> None:
    ids = [client.beta.assistants.create(model="gpt-4o", name=f"a{i}").id for i in range(3)]
    assert [a.id for a in client.beta.assistants.list().data] == ids[::-1]
    assert [a.id for a in client.beta.assistants.list(order="asc").data] == ids
    first = client.beta.assistants.list(limit=2)
    assert [a.id for a in first.data] == [ids[2], ids[1]]
    assert first.has_more is True
    rest = client.beta.assistants.list(limit=2, after=ids[1])
    assert [a.id for a in rest.data] == [ids[0]]
    assert rest.has_more is False


def test_list_is_empty_in_a_fresh_project(client: openai.OpenAI, http: httpx.Client) -> None:
    assert client.beta.assistants.list().data == []
    assert http.get("/assistants").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }


# ---- update ----------------------------------------------------------------------------


def test_update_changes_only_given_fields(client: openai.OpenAI, http: httpx.Client) -> None:
    file_id = upload(client)
    created = full_assistant(client, file_id)
    before = http.get(f"/assistants/{created.id}").json()

    updated = client.beta.assistants.update(created.id, name="Physics Tutor", temperature=0.7)
    assert updated.id == created.id
    assert updated.name == "Physics Tutor"
    assert updated.temperature == 0.7

    after = http.get(f"/assistants/{created.id}").json()
    assert after == {**before, "name": "Physics Tutor", "temperature": 0.7}
    assert client.beta.assistants.retrieve(created.id) == updated


def test_update_every_field(client: openai.OpenAI, http: httpx.Client) -> None:
    created = full_assistant(client, upload(client))
    updated = client.beta.assistants.update(
        created.id,
        model="gpt-4.1",
        name="New",
        description="New description",
        instructions="New instructions",
        tools=[{"type": "code_interpreter"}],
        metadata={"new": "yes"},
        temperature=0.0,
        top_p=0.5,
        response_format={"type": "json_object"},
        extra_body={"reasoning_effort": "high"},
    )
    assert updated.model == "gpt-4.1"
    assert updated.name == "New"
    assert updated.description == "New description"
    assert updated.instructions == "New instructions"
    assert [t.type for t in updated.tools] == ["code_interpreter"]
    assert updated.metadata == {"new": "yes"}
    assert updated.temperature == 0.0
    assert updated.top_p == 0.5
    assert updated.response_format is not None
    assert not isinstance(updated.response_format, str)
    assert updated.response_format.type == "json_object"
    assert updated.model_extra is not None
    assert updated.model_extra.get("reasoning_effort") == "high"

    wire = http.get(f"/assistants/{created.id}").json()
    assert wire["tools"] == [{"type": "code_interpreter"}]
    assert wire["response_format"] == {"type": "json_object"}
    assert wire["reasoning_effort"] == "high"
    assert wire["created_at"] == created.created_at


def test_update_null_means_not_given(client: openai.OpenAI, http: httpx.Client) -> None:
    created = full_assistant(client, upload(client))
    before = http.get(f"/assistants/{created.id}").json()

    response = http.post(
        f"/assistants/{created.id}",
        json={
            "model": None,
            "name": None,
            "description": None,
            "instructions": None,
            "tools": None,
            "tool_resources": None,
            "metadata": None,
            "temperature": None,
            "top_p": None,
            "response_format": None,
            "reasoning_effort": None,
        },
    )
    assert response.status_code == 200, response.text
    assert response.json() == before
    assert http.get(f"/assistants/{created.id}").json() == before


def test_update_with_empty_body_changes_nothing(client: openai.OpenAI, http: httpx.Client) -> None:
    created = full_assistant(client, upload(client))
    before = http.get(f"/assistants/{created.id}").json()
    assert client.beta.assistants.update(created.id) == created
    assert http.get(f"/assistants/{created.id}").json() == before


def test_update_metadata_replaces_the_map(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o", metadata={"a": "1", "b": "2"})
    updated = client.beta.assistants.update(created.id, metadata={"c": "3"})
    assert updated.metadata == {"c": "3"}
    cleared = client.beta.assistants.update(created.id, metadata={})
    assert cleared.metadata == {}
    assert client.beta.assistants.retrieve(created.id).metadata == {}


def test_update_tools_to_empty_list(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    updated = client.beta.assistants.update(created.id, tools=[])
    assert updated.tools == []
    assert client.beta.assistants.retrieve(created.id).tools == []


def test_update_tool_resources_replaces_that_tools_list(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    first, second, third = upload(client, "1.txt"), upload(client, "2.txt"), upload(client, "3.txt")
    created = client.beta.assistants.create(
        model="gpt-4o",
        tools=[{"type": "code_interpreter"}],
        tool_resources={"code_interpreter": {"file_ids": [first, second]}},
    )

    updated = client.beta.assistants.update(
        created.id, tool_resources={"code_interpreter": {"file_ids": [third]}}
    )
    assert updated.tool_resources is not None
    assert updated.tool_resources.code_interpreter is not None
    assert updated.tool_resources.code_interpreter.file_ids == [third]
    assert http.get(f"/assistants/{created.id}").json()["tool_resources"] == {
        "code_interpreter": {"file_ids": [third]}
    }

    # Another field alone leaves tool_resources as they are.
    client.beta.assistants.update(created.id, name="renamed")
    assert http.get(f"/assistants/{created.id}").json()["tool_resources"] == {
        "code_interpreter": {"file_ids": [third]}
    }

    emptied = client.beta.assistants.update(
        created.id, tool_resources={"code_interpreter": {"file_ids": []}}
    )
    assert emptied.tool_resources is not None
    assert emptied.tool_resources.code_interpreter is not None
    assert emptied.tool_resources.code_interpreter.file_ids == []


def test_update_unknown_assistant_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.assistants.update("asst_doesnotexist", name="x")
    error = assert_error(exc.value.response, 404)
    assert error["message"] == "No assistant found with id 'asst_doesnotexist'."


# ---- delete ----------------------------------------------------------------------------


def test_delete_then_retrieve_is_404(client: openai.OpenAI, http: httpx.Client) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    deleted = client.beta.assistants.delete(created.id)
    assert deleted.id == created.id
    assert deleted.object == "assistant.deleted"
    assert deleted.deleted is True

    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.assistants.retrieve(created.id)
    error = assert_error(exc.value.response, 404)
    assert error["message"] == f"No assistant found with id '{created.id}'."
    assert client.beta.assistants.list().data == []

    # Deleting again, and updating the deleted assistant, are 404 too.
    assert_error(http.delete(f"/assistants/{created.id}"), 404)
    assert_error(http.post(f"/assistants/{created.id}", json={"name": "x"}), 404)


def test_delete_wire_shape(client: openai.OpenAI, http: httpx.Client) -> None:
    created = client.beta.assistants.create(model="gpt-4o")
    response = http.delete(f"/assistants/{created.id}")
    assert response.status_code == 200
    assert response.json() == {"id": created.id, "object": "assistant.deleted", "deleted": True}


def test_delete_leaves_other_assistants(client: openai.OpenAI) -> None:
    keep = client.beta.assistants.create(model="gpt-4o", name="keep")
    drop = client.beta.assistants.create(model="gpt-4o", name="drop")
    client.beta.assistants.delete(drop.id)
    assert [a.id for a in client.beta.assistants.list().data] == [keep.id]
    assert client.beta.assistants.retrieve(keep.id) == keep


def test_retrieve_unknown_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as exc:
        client.beta.assistants.retrieve("asst_nope")
    error = assert_error(exc.value.response, 404)
    assert error["message"] == "No assistant found with id 'asst_nope'."


# ---- tool_resources references ---------------------------------------------------------


def test_unknown_code_interpreter_file_is_400(client: openai.OpenAI) -> None:
    good = upload(client)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(
            model="gpt-4o",
            tool_resources={"code_interpreter": {"file_ids": [good, "file-missing"]}},
        )
    error = assert_error(
        exc.value.response,
        400,
        param="tool_resources.code_interpreter.file_ids[1]",
        code="invalid_value",
    )
    assert "file-missing" in error["message"]
    assert client.beta.assistants.list().data == []


def test_file_of_another_project_is_unknown(client: openai.OpenAI, make_client: Any) -> None:
    other = make_client()
    foreign = upload(other)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(
            model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [foreign]}}
        )
    assert_error(exc.value.response, 400, param="tool_resources.code_interpreter.file_ids[0]")


def test_deleted_file_is_unknown(client: openai.OpenAI) -> None:
    file_id = upload(client)
    client.files.delete(file_id)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(
            model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [file_id]}}
        )
    assert_error(exc.value.response, 400, param="tool_resources.code_interpreter.file_ids[0]")


def test_update_with_unknown_file_is_400_and_changes_nothing(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    file_id = upload(client)
    created = client.beta.assistants.create(
        model="gpt-4o", tool_resources={"code_interpreter": {"file_ids": [file_id]}}
    )
    before = http.get(f"/assistants/{created.id}").json()
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.update(
            created.id,
            name="changed",
            tool_resources={"code_interpreter": {"file_ids": ["file-missing"]}},
        )
    assert_error(exc.value.response, 400, param="tool_resources.code_interpreter.file_ids[0]")
    assert http.get(f"/assistants/{created.id}").json() == before


def test_vector_store_ids_are_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(
            model="gpt-4o",
            tools=[{"type": "file_search"}],
            tool_resources={"file_search": {"vector_store_ids": ["vs_missing"]}},
        )
    error = assert_error(
        exc.value.response, 400, param="tool_resources.file_search.vector_store_ids[0]"
    )
    assert "vs_missing" in error["message"]


def test_too_many_code_interpreter_files_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/assistants",
        json={
            "model": "gpt-4o",
            "tool_resources": {"code_interpreter": {"file_ids": [f"file-{i}" for i in range(21)]}},
        },
    )
    assert_error(
        response,
        400,
        param="tool_resources.code_interpreter.file_ids",
        code="array_above_max_length",
    )


# ---- validation ------------------------------------------------------------------------


def test_name_too_long_is_400(client: openai.OpenAI) -> None:
    assert client.beta.assistants.create(model="gpt-4o", name="n" * 256).name == "n" * 256
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", name="n" * 257)
    assert_error(exc.value.response, 400, param="name", code="string_above_max_length")


def test_description_too_long_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", description="d" * 513)
    assert_error(exc.value.response, 400, param="description", code="string_above_max_length")


def test_update_name_too_long_is_400(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o", name="ok")
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.update(created.id, name="n" * 257)
    assert_error(exc.value.response, 400, param="name", code="string_above_max_length")
    assert client.beta.assistants.retrieve(created.id).name == "ok"


def test_missing_model_is_400(http: httpx.Client) -> None:
    response = http.post("/assistants", json={"name": "no model"})
    assert_error(response, 400, param="model", code="missing_required_parameter")


@pytest.mark.parametrize("name", ["has space", "dot.ted", "", "x" * 65])
def test_bad_function_name_is_400(client: openai.OpenAI, name: str) -> None:
    tools: Any = [
        {"type": "code_interpreter"},
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}},
    ]
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", tools=tools)
    assert_error(exc.value.response, 400, param="tools[1].function.name")


def test_good_function_names_are_accepted(client: openai.OpenAI) -> None:
    tools: Any = [
        {"type": "function", "function": {"name": name}} for name in ("a", "A-b_9", "x" * 64)
    ]
    created = client.beta.assistants.create(model="gpt-4o", tools=tools)
    assert [t.function.name for t in created.tools if t.type == "function"] == [
        "a",
        "A-b_9",
        "x" * 64,
    ]


def test_bad_json_schema_name_is_400(client: openai.OpenAI) -> None:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "bad name", "schema": {"type": "object"}},
    }
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", response_format=response_format)
    assert_error(exc.value.response, 400, param="response_format.json_schema.name")


def test_unknown_tool_type_is_400(http: httpx.Client) -> None:
    response = http.post(
        "/assistants", json={"model": "gpt-4o", "tools": [{"type": "web_browser"}]}
    )
    assert_error(response, 400, param="tools[0].type", code="invalid_value")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("temperature", 3),
        ("temperature", 2.5),
        ("temperature", -0.1),
        ("top_p", -1),
        ("top_p", 1.5),
    ],
)
def test_sampling_out_of_range_is_400(client: openai.OpenAI, field: str, value: float) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", **{field: value})  # type: ignore[arg-type]
    assert_error(exc.value.response, 400, param=field)
    assert client.beta.assistants.list().data == []


def test_sampling_bounds_are_inclusive(client: openai.OpenAI) -> None:
    low = client.beta.assistants.create(model="gpt-4o", temperature=0, top_p=0)
    assert (low.temperature, low.top_p) == (0, 0)
    high = client.beta.assistants.create(model="gpt-4o", temperature=2, top_p=1)
    assert (high.temperature, high.top_p) == (2, 1)


def test_update_temperature_out_of_range_is_400(client: openai.OpenAI) -> None:
    created = client.beta.assistants.create(model="gpt-4o", temperature=0.5)
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.update(created.id, temperature=3)
    assert_error(exc.value.response, 400, param="temperature")
    assert client.beta.assistants.retrieve(created.id).temperature == 0.5


def test_too_many_tools_is_400(client: openai.OpenAI) -> None:
    tools: Any = [{"type": "function", "function": {"name": f"f{i}"}} for i in range(129)]
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", tools=tools)
    assert_error(exc.value.response, 400, param="tools", code="array_above_max_length")

    created = client.beta.assistants.create(model="gpt-4o", tools=tools[:128])
    assert len(created.tools) == 128


@pytest.mark.parametrize(
    ("tool", "param"),
    [
        (
            {"type": "file_search", "file_search": {"max_num_results": 0}},
            "tools[0].file_search.max_num_results",
        ),
        (
            {"type": "file_search", "file_search": {"max_num_results": 51}},
            "tools[0].file_search.max_num_results",
        ),
        (
            {"type": "file_search", "file_search": {"ranking_options": {"score_threshold": 1.5}}},
            "tools[0].file_search.ranking_options.score_threshold",
        ),
        (
            {
                "type": "file_search",
                "file_search": {"ranking_options": {"ranker": "best", "score_threshold": 0.5}},
            },
            "tools[0].file_search.ranking_options.ranker",
        ),
    ],
)
def test_bad_file_search_settings_are_400(
    client: openai.OpenAI, tool: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as exc:
        client.beta.assistants.create(model="gpt-4o", tools=[tool])  # type: ignore[list-item]
    assert_error(exc.value.response, 400, param=param)


def test_bad_reasoning_effort_is_400(http: httpx.Client) -> None:
    response = http.post("/assistants", json={"model": "o3", "reasoning_effort": "extreme"})
    assert_error(response, 400, param="reasoning_effort", code="invalid_value")


def test_metadata_limits(client: openai.OpenAI) -> None:
    ok = {f"k{i}": "v" * 512 for i in range(16)}
    assert client.beta.assistants.create(model="gpt-4o", metadata=ok).metadata == ok
    for bad in (
        {f"k{i}": "v" for i in range(17)},
        {"k" * 65: "v"},
        {"k": "v" * 513},
    ):
        with pytest.raises(openai.BadRequestError) as exc:
            client.beta.assistants.create(model="gpt-4o", metadata=bad)
        assert_error(exc.value.response, 400, param="metadata")
