"""Attribute filters of vector store search: evaluation and validation."""

from __future__ import annotations

from typing import Any

import pytest

from assistd.errors import InvalidRequestError
from assistd.retrieval.filters import MAX_DEPTH, matches, parse_filter

ATTRS: dict[str, Any] = {
    "dept": "hr",
    "year": 2024,
    "score": 0.5,
    "public": True,
    "date": "2024-03",
}


def check(raw: dict[str, Any], attributes: dict[str, Any] | None = ATTRS) -> bool:
    return matches(parse_filter(raw), attributes)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "eq", "key": "dept", "value": "hr"}, True),
        ({"type": "eq", "key": "dept", "value": "HR"}, False),
        ({"type": "eq", "key": "year", "value": 2024.0}, True),
        ({"type": "eq", "key": "year", "value": "2024"}, False),  # type-strict
        ({"type": "eq", "key": "public", "value": True}, True),
        ({"type": "eq", "key": "public", "value": 1}, False),  # a boolean is not a number
        ({"type": "ne", "key": "dept", "value": "eng"}, True),
        ({"type": "ne", "key": "dept", "value": "hr"}, False),
        ({"type": "gt", "key": "year", "value": 2023}, True),
        ({"type": "gt", "key": "year", "value": 2024}, False),
        ({"type": "gte", "key": "year", "value": 2024}, True),
        ({"type": "lt", "key": "score", "value": 0.75}, True),
        ({"type": "lte", "key": "score", "value": 0.4}, False),
        ({"type": "gte", "key": "date", "value": "2024-01"}, True),  # strings: lexicographic
        ({"type": "gt", "key": "year", "value": "2000"}, False),  # mixed types never order
        ({"type": "lt", "key": "public", "value": 5}, False),
        ({"type": "in", "key": "dept", "value": ["eng", "hr"]}, True),
        ({"type": "in", "key": "year", "value": [2023, 2025]}, False),
        ({"type": "nin", "key": "dept", "value": ["eng"]}, True),
        ({"type": "nin", "key": "dept", "value": ["hr"]}, False),
        # A missing key is unequal to anything and in no list.
        ({"type": "eq", "key": "absent", "value": "x"}, False),
        ({"type": "gt", "key": "absent", "value": 0}, False),
        ({"type": "in", "key": "absent", "value": ["x"]}, False),
        ({"type": "ne", "key": "absent", "value": "x"}, True),
        ({"type": "nin", "key": "absent", "value": ["x"]}, True),
    ],
)
def test_comparisons(raw: dict[str, Any], expected: bool) -> None:
    assert check(raw) is expected


def test_compound_filters_nest() -> None:
    raw = {
        "type": "and",
        "filters": [
            {"type": "eq", "key": "dept", "value": "hr"},
            {
                "type": "or",
                "filters": [
                    {"type": "lt", "key": "year", "value": 2000},
                    {"type": "eq", "key": "public", "value": True},
                ],
            },
        ],
    }
    assert check(raw)
    assert not check(raw, {**ATTRS, "public": False})
    assert not check(raw, {**ATTRS, "dept": "eng"})
    assert check({"type": "or", "filters": [{"type": "eq", "key": "x", "value": 1}, raw]})


def test_files_without_attributes() -> None:
    assert not check({"type": "eq", "key": "dept", "value": "hr"}, None)
    assert check({"type": "ne", "key": "dept", "value": "hr"}, {})


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        ("eq", "filters", "invalid_type"),
        ({"key": "a", "value": 1}, "filters.type", "missing_required_parameter"),
        ({"type": "like", "key": "a", "value": 1}, "filters.type", "invalid_value"),
        ({"type": "eq", "value": 1}, "filters.key", "missing_required_parameter"),
        ({"type": "eq", "key": "a"}, "filters.value", "missing_required_parameter"),
        ({"type": "eq", "key": 5, "value": 1}, "filters.key", "invalid_type"),
        ({"type": "eq", "key": "a", "value": None}, "filters.value", "invalid_type"),
        ({"type": "eq", "key": "a", "value": {"b": 1}}, "filters.value", "invalid_type"),
        ({"type": "eq", "key": "a", "value": [1]}, "filters.value", "invalid_type"),
        ({"type": "gt", "key": "a", "value": True}, "filters.value", "invalid_type"),
        ({"type": "in", "key": "a", "value": "x"}, "filters.value", "invalid_type"),
        ({"type": "in", "key": "a", "value": ["x", True]}, "filters.value[1]", "invalid_type"),
        ({"type": "eq", "key": "a", "value": 1, "extra": 2}, "filters.extra", "unknown_parameter"),
        ({"type": "and"}, "filters.filters", "missing_required_parameter"),
        ({"type": "and", "filters": {}}, "filters.filters", "invalid_type"),
        ({"type": "or", "filters": []}, "filters.filters", "invalid_value"),
        (
            {"type": "and", "filters": [{"type": "or", "filters": [{"type": "eq", "key": "a"}]}]},
            "filters.filters[0].filters[0].value",
            "missing_required_parameter",
        ),
        (
            {"type": "and", "filters": [{"type": "eq", "key": "a", "value": 1}, 7]},
            "filters.filters[1]",
            "invalid_type",
        ),
    ],
)
def test_invalid_filters_name_the_offending_part(raw: Any, param: str, code: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        parse_filter(raw)
    assert (caught.value.param, caught.value.code) == (param, code)
    assert param in caught.value.message


def test_depth_and_size_are_bounded() -> None:
    leaf: dict[str, Any] = {"type": "eq", "key": "a", "value": 1}
    deep = leaf
    for _ in range(MAX_DEPTH):
        deep = {"type": "and", "filters": [deep]}
    with pytest.raises(InvalidRequestError, match="nested"):
        parse_filter(deep)
    wide = {"type": "or", "filters": [leaf] * 300}
    with pytest.raises(InvalidRequestError, match="at most"):
        parse_filter(wide)
