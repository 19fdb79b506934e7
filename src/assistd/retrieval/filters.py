"""Attribute filters of vector store search: ``ComparisonFilter`` and ``CompoundFilter``.

``parse_filter`` checks a filter the client sent and names the offending part the way
OpenAI names request parameters (``filters.filters[1].value``); ``matches`` evaluates it
against one file's ``attributes``. Search evaluates filters in Python over the store's
files and passes the allowed file ids to the index, so the same rules hold on SQLite and
PostgreSQL whatever their JSON operators would make of mixed types.

Semantics, where the spec is silent:
- Comparisons are type-strict: the string "1" is not the number 1, and ``true`` is not 1.
- ``gt``/``gte``/``lt``/``lte`` order numbers numerically and strings lexicographically (so
  ISO-8601 dates compare correctly); booleans and mixed types never match.
- A file without the key matches only ``ne`` and ``nin`` (it is not equal to the value).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from assistd.errors import InvalidRequestError

ComparisonOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
CompoundOp = Literal["and", "or"]
Scalar = str | int | float | bool

COMPARISON_OPS: tuple[ComparisonOp, ...] = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUND_OPS: tuple[CompoundOp, ...] = ("and", "or")
# A filter is evaluated once per file of the store: bound the work one request can ask for.
MAX_DEPTH = 8
MAX_NODES = 256
MAX_LIST_VALUES = 1000


@dataclass(frozen=True)
class Comparison:
    op: ComparisonOp
    key: str
    value: Scalar | tuple[str | int | float, ...]


@dataclass(frozen=True)
class Compound:
    op: CompoundOp
    filters: tuple[Filter, ...]


Filter = Comparison | Compound


def parse_filter(raw: Any, param: str = "filters") -> Filter:
    """Validate a filter object and return it typed.

    Raises:
        InvalidRequestError: The shape is wrong; ``param`` points at the offending part.
    """
    budget = [MAX_NODES]
    return _parse(raw, param, 1, budget)


def matches(node: Filter, attributes: Mapping[str, Any] | None) -> bool:
    """Whether a file with these ``attributes`` passes the filter."""
    if isinstance(node, Compound):
        results = (matches(child, attributes) for child in node.filters)
        return all(results) if node.op == "and" else any(results)
    present = attributes is not None and node.key in attributes
    if not present:
        return node.op in ("ne", "nin")
    assert attributes is not None
    actual = attributes[node.key]
    if node.op in ("in", "nin"):
        assert isinstance(node.value, tuple)
        found = any(_equal(actual, item) for item in node.value)
        return found if node.op == "in" else not found
    assert not isinstance(node.value, tuple)
    if node.op == "eq":
        return _equal(actual, node.value)
    if node.op == "ne":
        return not _equal(actual, node.value)
    return _ordered(node.op, actual, node.value)


def _equal(actual: Any, expected: Any) -> bool:
    if _kind(actual) != _kind(expected):
        return False
    return bool(actual == expected)


def _ordered(op: str, actual: Any, expected: Scalar) -> bool:
    kind = _kind(actual)
    if kind not in ("number", "string") or kind != _kind(expected):
        return False
    if op == "gt":
        return bool(actual > expected)
    if op == "gte":
        return bool(actual >= expected)
    if op == "lt":
        return bool(actual < expected)
    return bool(actual <= expected)


def _kind(value: Any) -> str:
    # bool is an int in Python; in JSON (and here) it is its own type.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


def _parse(raw: Any, param: str, depth: int, budget: list[int]) -> Filter:
    budget[0] -= 1
    if budget[0] < 0:
        raise _invalid(param, f"a filter may hold at most {MAX_NODES} conditions in all.")
    if depth > MAX_DEPTH:
        raise _invalid(param, f"filters may be nested at most {MAX_DEPTH} levels deep.")
    if not isinstance(raw, dict):
        raise _type_error(param, "an object", raw)
    if "type" not in raw:
        raise InvalidRequestError(
            f"Missing required parameter: '{param}.type'.",
            param=f"{param}.type",
            code="missing_required_parameter",
        )
    kind = raw["type"]
    if kind in COMPOUND_OPS:
        return _compound(raw, param, depth, budget)
    if kind in COMPARISON_OPS:
        return _comparison(raw, param)
    allowed = ", ".join(f"'{op}'" for op in (*COMPARISON_OPS, *COMPOUND_OPS))
    raise InvalidRequestError(
        f"Invalid value for '{param}.type': expected one of {allowed}, but got "
        f"{_shown(kind)} instead.",
        param=f"{param}.type",
        code="invalid_value",
    )


def _compound(raw: dict[str, Any], param: str, depth: int, budget: list[int]) -> Compound:
    _no_unknown(raw, param, ("type", "filters"))
    if "filters" not in raw:
        raise _missing(param, "filters")
    children = raw["filters"]
    if not isinstance(children, list):
        raise _type_error(f"{param}.filters", "an array", children)
    if not children:
        # and([]) and or([]) have answers (everything, nothing) but are never what was meant.
        raise InvalidRequestError(
            f"Invalid '{param}.filters': expected a non-empty array of filters, but got an "
            "empty array.",
            param=f"{param}.filters",
            code="invalid_value",
        )
    parsed = tuple(
        _parse(child, f"{param}.filters[{at}]", depth + 1, budget)
        for at, child in enumerate(children)
    )
    return Compound(op=raw["type"], filters=parsed)


def _comparison(raw: dict[str, Any], param: str) -> Comparison:
    _no_unknown(raw, param, ("type", "key", "value"))
    for field in ("key", "value"):
        if field not in raw:
            raise _missing(param, field)
    op: ComparisonOp = raw["type"]
    key, value = raw["key"], raw["value"]
    if not isinstance(key, str):
        raise _type_error(f"{param}.key", "a string", key)
    if op in ("in", "nin"):
        if not isinstance(value, list):
            raise _type_error(f"{param}.value", f"an array for '{op}'", value)
        if len(value) > MAX_LIST_VALUES:
            raise _invalid(
                f"{param}.value", f"expected at most {MAX_LIST_VALUES} values for '{op}'."
            )
        for at, item in enumerate(value):
            if _kind(item) not in ("string", "number"):
                raise _type_error(f"{param}.value[{at}]", "a string or a number", item)
        return Comparison(op=op, key=key, value=tuple(value))
    if isinstance(value, list):
        raise _type_error(f"{param}.value", f"a string, number or boolean for '{op}'", value)
    if _kind(value) == "other":
        raise _type_error(f"{param}.value", "a string, number or boolean", value)
    if op not in ("eq", "ne") and _kind(value) == "boolean":
        raise _type_error(f"{param}.value", f"a string or a number for '{op}'", value)
    return Comparison(op=op, key=key, value=value)


def _no_unknown(raw: dict[str, Any], param: str, known: Sequence[str]) -> None:
    for name in raw:
        if name not in known:
            raise InvalidRequestError(
                f"Unknown parameter: '{param}.{name}'.",
                param=f"{param}.{name}",
                code="unknown_parameter",
            )


def _missing(param: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Missing required parameter: '{param}.{field}'.",
        param=f"{param}.{field}",
        code="missing_required_parameter",
    )


def _invalid(param: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"Invalid '{param}': {why}", param=param, code="invalid_value")


def _type_error(param: str, expected: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_json_type(value)} instead.",
        param=param,
        code="invalid_type",
    )


def _json_type(value: Any) -> str:
    kinds: list[tuple[type | tuple[type, ...], str]] = [
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a decimal"),
        (str, "a string"),
        (list, "an array"),
        (dict, "an object"),
        (type(None), "null"),
    ]
    return next((name for kind, name in kinds if isinstance(value, kind)), "a value")


def _shown(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else _json_type(value)
