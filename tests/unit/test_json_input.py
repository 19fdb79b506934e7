"""Request bodies to JSON: what json.loads alone would let through to a 500 is a 400 here."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistd.errors import InvalidRequestError
from assistd.http.json_input import MAX_JSON_DEPTH, parse_json_body


def refused(raw: bytes) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as caught:
        parse_json_body(raw)
    assert caught.value.status_code == 400
    return caught.value


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("raw", [b"", b"  \n\t ", b"\xef\xbb\xbf", b"\xef\xbb\xbf{}"])
def test_empty_bodies_are_an_empty_object(raw: bytes) -> None:
    assert parse_json_body(raw) == {}


def test_a_byte_order_mark_is_allowed() -> None:
    assert parse_json_body(b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == {"a": "é"}


@pytest.mark.parametrize(
    ("raw", "position"),
    [(b'{"a": "\xff"}', 7), (b'{"a": "\xed\xa0\x80"}', 7), (b'{"a": "\xe2\x82', 7)],
)
def test_invalid_utf8_names_the_byte(raw: bytes, position: int) -> None:
    error = refused(raw)
    assert error.message == (
        "We could not parse the JSON body of your request: it is not valid UTF-8 "
        f"(invalid byte at position {position})."
    )
    assert error.param is None


def test_invalid_json_keeps_openais_message() -> None:
    assert refused(b"{").message.startswith("We could not parse the JSON body of your request.")


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000, b"[" * 5000 + b"]" * 5000])
def test_nesting_past_the_parser_is_a_400(raw: bytes) -> None:
    error = refused(raw)
    assert "nested too deeply" in error.message


def test_nesting_up_to_the_limit() -> None:
    assert parse_json_body(json.dumps(nested(MAX_JSON_DEPTH)).encode()) == nested(MAX_JSON_DEPTH)
    error = refused(json.dumps({"tools": [nested(MAX_JSON_DEPTH)]}).encode())
    assert error.param == "tools"
    assert error.code == "invalid_value"
    assert error.message == (
        f"Invalid 'tools': it is nested too deeply (the limit is {MAX_JSON_DEPTH} levels of "
        "arrays and objects)."
    )
    arrays = "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)
    assert refused(arrays.encode()).param is None


@pytest.mark.parametrize(
    ("body", "param", "problem"),
    [
        ({"name": "a\x00"}, "name", "the string contains a null character"),
        ({"m": {"k\x00": "v"}}, "m", "a key contains a null character"),
        ({"t": [{"p": ["ok", "\ud800"]}]}, "t[0].p[1]", "lone UTF-16 surrogate"),
        ({"k": "\udc00x"}, "k", "lone UTF-16 surrogate"),
    ],
)
def test_strings_nothing_can_store(body: Any, param: str, problem: str) -> None:
    error = refused(json.dumps(body).encode())
    assert error.param == param
    assert error.code == "invalid_value"
    assert problem in error.message


def test_escapes_that_are_text_pass() -> None:
    body = {"a": "😀 é \u0001 \\u0000 \\ud800", "b": ["\uffff"]}
    raw = json.dumps(body).encode()  # ensure_ascii: the emoji as a surrogate pair
    assert b"\\ud83d\\ude00" in raw
    assert parse_json_body(raw) == body


def test_wide_bodies_are_fine() -> None:
    body = {"items": list(range(100_000)), "text": "x" * 1_000_000}
    assert parse_json_body(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    ("raw", "value"), [(b"42", 42), (b"null", None), (b'"s"', "s"), (b"[]", [])]
)
def test_bodies_that_are_not_objects_parse(raw: bytes, value: Any) -> None:
    # The caller refuses them as "expected an object"; parsing itself has nothing against them.
    assert parse_json_body(raw) == value
