"""Pydantic errors rewritten as OpenAI's 400s: the param path and the code."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from assistd.errors import InvalidRequestError
from assistd.http.validation import param_path, to_api_error
from assistd.protocol.assistants import CreateAssistantRequest, ModifyAssistantRequest
from assistd.protocol.messages import CreateMessageRequest
from assistd.protocol.threads import CreateThreadRequest

FUNCTION_TOOL = {"type": "function", "function": {"name": "bad name"}}


@pytest.mark.parametrize(
    ("loc", "data", "expected"),
    [
        ((), {}, ""),
        (("model",), {}, "model"),
        (("body", "model"), {}, "model"),
        (("query", "limit"), None, "limit"),
        (("path", "thread_id"), None, "thread_id"),
        (("header", "authorization"), None, "authorization"),
        # Discriminated unions repeat the tag before the branch's fields.
        (
            ("tools", 0, "function", "function", "name"),
            {"tools": [FUNCTION_TOOL]},
            "tools[0].function.name",
        ),
        (
            ("tools", 1, "file_search", "file_search", "max_num_results"),
            {"tools": [{"type": "code_interpreter"}, {"type": "file_search", "file_search": {}}]},
            "tools[1].file_search.max_num_results",
        ),
        # The tag alone (the branch's own field with the tag's name is missing).
        (
            ("tools", 0, "function", "function"),
            {"tools": [{"type": "function"}]},
            "tools[0].function",
        ),
        # A key that merely equals a value elsewhere is not a tag.
        (
            ("tools", 0, "function", "function", "name"),
            {"tools": [{"type": "code_interpreter", "function": {"name": "x"}}]},
            "tools[0].function.function.name",
        ),
        (
            (
                "response_format",
                "tagged-union[TextFormat,JsonObjectFormat,JsonSchemaFormat]",
                "json_schema",
                "json_schema",
                "name",
            ),
            {"response_format": {"type": "json_schema", "json_schema": {"name": "a b"}}},
            "response_format.json_schema.name",
        ),
        # Union branch labels are dropped.
        (("content", "str"), {"content": [1]}, "content"),
        (
            ("content", "list[tagged-union[TextPartRequest,ImageFilePart]]", 0, "text", "text"),
            {"content": [{"type": "text", "text": 5}]},
            "content[0].text",
        ),
        (("response_format", "literal['auto']"), {"response_format": "x"}, "response_format"),
        (("metadata", "dict", "k"), {"metadata": {"k": 1}}, "metadata.k"),
        (("x", "json-or-python", "y"), {"x": {"y": 1}}, "x.y"),
        # Indexes render even when the data does not reach that far.
        (("tools", 3, "type"), {"tools": []}, "tools[3].type"),
        (("tools", 0, "type"), None, "tools[0].type"),
        (("a", "b", 2, "c"), None, "a.b[2].c"),
        (("messages", 0, "content", 1, "image_file", "image_file", "file_id"), None, None),
    ],
)
def test_param_path(loc: tuple[Any, ...], data: Any, expected: str | None) -> None:
    if expected is None:
        # Without data nothing tells a tag from a key: every part is kept.
        expected = "messages[0].content[1].image_file.image_file.file_id"
    assert param_path(loc, data) == expected


def test_param_path_drops_each_tag_once_in_nested_unions() -> None:
    data = {
        "messages": [
            {
                "content": [
                    {"type": "image_file", "image_file": {"file_id": 5}},
                ]
            }
        ]
    }
    loc = (
        "messages",
        0,
        "content",
        "list[tagged-union[TextPartRequest,ImageFilePart,ImageUrlPart]]",
        0,
        "image_file",
        "image_file",
        "file_id",
    )
    assert param_path(loc, data) == "messages[0].content[0].image_file.file_id"


def _error(model: type[BaseModel], data: Any) -> InvalidRequestError:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return to_api_error(caught.value.errors(), data)


@pytest.mark.parametrize(
    ("data", "param", "code", "message"),
    [
        ({}, "model", "missing_required_parameter", "Missing required parameter: 'model'."),
        (
            {"model": 5},
            "model",
            "invalid_type",
            "Invalid type for 'model': expected a string, but got an integer instead.",
        ),
        (
            {"model": "gpt-4o", "temperature": "hot"},
            "temperature",
            "invalid_type",
            "Invalid type for 'temperature': expected a decimal, but got a string instead.",
        ),
        (
            {"model": "gpt-4o", "tools": {}},
            "tools",
            "invalid_type",
            "Invalid type for 'tools': expected an array, but got an object instead.",
        ),
        (
            {"model": "gpt-4o", "temperature": 2.5},
            "temperature",
            "decimal_above_max_value",
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2.0, "
            "but got 2.5 instead.",
        ),
        (
            {"model": "gpt-4o", "top_p": -0.5},
            "top_p",
            "decimal_below_min_value",
            "Invalid 'top_p': decimal below minimum value. Expected a value >= 0.0, "
            "but got -0.5 instead.",
        ),
        (
            {"model": "gpt-4o", "name": "x" * 257},
            "name",
            "string_above_max_length",
            "Invalid 'name': string too long. Expected a string with maximum length 256, "
            "but got a string with length 257 instead.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"type": "code_interpreter"}] * 129},
            "tools",
            "array_above_max_length",
            "Invalid 'tools': array too long. Expected an array with maximum length 128, "
            "but got an array with length 129 instead.",
        ),
        (
            {"model": ""},
            "model",
            "string_below_min_length",
            "Invalid 'model': string too short. Expected a string with minimum length 1.",
        ),
        (
            {"model": "gpt-4o", "reasoning_effort": "bogus"},
            "reasoning_effort",
            "invalid_value",
            "Invalid value for 'reasoning_effort': 'bogus'. Supported values are: 'none', "
            "'minimal', 'low', 'medium', 'high', 'xhigh' or 'max'.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"function": {"name": "f"}}]},
            "tools[0].type",
            "missing_required_parameter",
            "Missing required parameter: 'tools[0].type'.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"type": "retrieval"}]},
            "tools[0].type",
            "invalid_value",
            "Invalid value for 'tools[0].type': 'retrieval'. Supported values are: "
            "'code_interpreter', 'file_search', 'function'.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"type": "function"}]},
            "tools[0].function",
            "missing_required_parameter",
            "Missing required parameter: 'tools[0].function'.",
        ),
        (
            {"model": "gpt-4o", "tools": [{"type": "function", "function": {}}]},
            "tools[0].function.name",
            "missing_required_parameter",
            "Missing required parameter: 'tools[0].function.name'.",
        ),
        (
            {"model": "gpt-4o", "tools": [FUNCTION_TOOL]},
            "tools[0].function.name",
            "invalid_value",
            "Invalid name 'bad name': it must be 1 to 64 characters of a-z, A-Z, 0-9, "
            "underscores or dashes.",
        ),
        (
            {
                "model": "gpt-4o",
                "tools": [{"type": "file_search", "file_search": {"max_num_results": 99}}],
            },
            "tools[0].file_search.max_num_results",
            "integer_above_max_value",
            "Invalid 'tools[0].file_search.max_num_results': integer above maximum value. "
            "Expected a value <= 50, but got 99 instead.",
        ),
        (
            {"model": "gpt-4o", "metadata": {"a": 1}},
            "metadata.a",
            "invalid_type",
            "Invalid type for 'metadata.a': expected a string, but got an integer instead.",
        ),
        (
            {"model": "gpt-4o", "metadata": {str(i): "v" for i in range(17)}},
            "metadata",
            "object_above_max_properties",
            "Invalid 'metadata': too many properties. Expected an object with at most 16 "
            "properties, but got an object with 17 properties instead.",
        ),
        (
            {"model": "gpt-4o", "metadata": {"k": "v" * 513}},
            "metadata",
            "string_above_max_length",
            "Invalid 'metadata.k': string too long. Expected a string with maximum length 512, "
            "but got a string with length 513 instead.",
        ),
        # Unions of a literal and a tagged union: the branch the object aimed at wins.
        (
            {
                "model": "gpt-4o",
                "response_format": {"type": "json_schema", "json_schema": {"name": "a b"}},
            },
            "response_format.json_schema.name",
            "invalid_value",
            "Invalid name 'a b': it must be 1 to 64 characters of a-z, A-Z, 0-9, "
            "underscores or dashes.",
        ),
        (
            {"model": "gpt-4o", "response_format": {"type": "xml"}},
            "response_format.type",
            "invalid_value",
            "Invalid value for 'response_format.type': 'xml'. Supported values are: "
            "'text', 'json_object', 'json_schema'.",
        ),
        (
            {"model": "gpt-4o", "response_format": {}},
            "response_format.type",
            "missing_required_parameter",
            "Missing required parameter: 'response_format.type'.",
        ),
        (
            {"model": "gpt-4o", "response_format": "bogus"},
            "response_format",
            "invalid_value",
            "Invalid value for 'response_format': 'bogus'. Supported values are: 'auto'.",
        ),
    ],
)
def test_to_api_error_for_assistants(
    data: dict[str, Any], param: str, code: str, message: str
) -> None:
    error = _error(CreateAssistantRequest, data)
    assert isinstance(error, InvalidRequestError)
    assert error.status_code == 400
    assert error.error_type == "invalid_request_error"
    assert error.param == param
    assert error.code == code
    assert error.message == message


def test_modify_validates_like_create_without_requiring_model() -> None:
    ModifyAssistantRequest.model_validate({})
    error = _error(ModifyAssistantRequest, {"name": "x" * 300})
    assert (error.param, error.code) == ("name", "string_above_max_length")


@pytest.mark.parametrize(
    ("data", "param", "code", "message"),
    [
        (
            {"role": "user"},
            "content",
            "missing_required_parameter",
            "Missing required parameter: 'content'.",
        ),
        (
            {"role": "bot", "content": "hi"},
            "role",
            "invalid_value",
            "Invalid value for 'role': 'bot'. Supported values are: 'user' or 'assistant'.",
        ),
        (
            {"role": "user", "content": 5},
            "content",
            "invalid_type",
            "Invalid type for 'content': expected a string, but got an integer instead.",
        ),
        # min_length on `str | list` counts characters or items: named by the input's type.
        (
            {"role": "user", "content": ""},
            "content",
            "string_below_min_length",
            "Invalid 'content': string too short. Expected a string with minimum length 1.",
        ),
        (
            {"role": "user", "content": []},
            "content",
            "array_below_min_length",
            "Invalid 'content': array too short. Expected an array with minimum length 1.",
        ),
        # content is `str | list[part]`: an array's error is reported inside the array,
        # not as "expected a string".
        (
            {"role": "user", "content": [{"type": "text", "text": 5}]},
            "content[0].text",
            "invalid_type",
            "Invalid type for 'content[0].text': expected a string, but got an integer instead.",
        ),
        (
            {"role": "user", "content": [{"type": "image_file"}]},
            "content[0].image_file",
            "missing_required_parameter",
            "Missing required parameter: 'content[0].image_file'.",
        ),
        (
            {"role": "user", "content": [{"type": "video"}]},
            "content[0].type",
            "invalid_value",
            "Invalid value for 'content[0].type': 'video'. Supported values are: "
            "'text', 'image_file', 'image_url'.",
        ),
        (
            {"role": "user", "content": [{"text": "x"}]},
            "content[0].type",
            "missing_required_parameter",
            "Missing required parameter: 'content[0].type'.",
        ),
    ],
)
def test_to_api_error_for_messages(
    data: dict[str, Any], param: str, code: str, message: str
) -> None:
    error = _error(CreateMessageRequest, data)
    assert (error.param, error.code) == (param, code)
    assert error.message == message


def test_nested_thread_message_paths() -> None:
    data = {"messages": [{"role": "user", "content": "ok"}, {"role": "user", "content": [{}]}]}
    error = _error(CreateThreadRequest, data)
    assert error.param == "messages[1].content[0].type"
    assert error.code == "missing_required_parameter"


def test_first_error_wins_across_fields() -> None:
    # Several fields are wrong: the first in declaration order is reported, and a union
    # pick never reaches across fields.
    error = _error(CreateAssistantRequest, {"name": 5, "temperature": 9})
    assert error.param == "name"
    assert error.code == "invalid_type"


def test_query_errors_without_data() -> None:
    errors = [
        {
            "type": "greater_than_equal",
            "loc": ("query", "limit"),
            "msg": "Input should be greater than or equal to 1",
            "input": "0",
            "ctx": {"ge": 1},
        }
    ]
    error = to_api_error(errors, None)
    # The query value arrives as text but is reported as the integer it is.
    assert error.param == "limit"
    assert error.code == "integer_below_min_value"
    assert error.message == (
        "Invalid 'limit': integer below minimum value. Expected a value >= 1, but got 0 instead."
    )


def test_query_decimal_bounds() -> None:
    errors = [
        {
            "type": "less_than_equal",
            "loc": ("query", "score"),
            "msg": "Input should be less than or equal to 1",
            "input": "1.5",
            "ctx": {"le": 1},
        }
    ]
    error = to_api_error(errors, None)
    assert (error.param, error.code) == ("score", "decimal_above_max_value")
    assert error.message.endswith("but got 1.5 instead.")


def test_unknown_pydantic_error_falls_back_to_invalid_value() -> None:
    errors = [{"type": "url_parsing", "loc": ("body", "url"), "msg": "Input should be a URL"}]
    error = to_api_error(errors, {"url": "x"})
    assert error.param == "url"
    assert error.code == "invalid_value"
    assert error.message == "Invalid 'url': Input should be a URL."


def test_error_without_location_has_no_param() -> None:
    error = to_api_error([{"type": "missing", "loc": (), "msg": "Field required"}], {})
    assert error.param is None
    assert error.message == "Missing required parameter: the request."
    assert error.to_dict() == {
        "error": {
            "message": "Missing required parameter: the request.",
            "type": "invalid_request_error",
            "param": None,
            "code": "missing_required_parameter",
        }
    }
