"""Pydantic validation errors rewritten as OpenAI's 400 ``invalid_request_error``.

OpenAI names the offending parameter as a path (``tools[0].function.name``) and uses
stable codes (``missing_required_parameter``, ``invalid_type``...); clients and the SDK
read ``param`` and ``code``, so we reproduce them rather than pydantic's own shapes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from assistd.errors import InvalidRequestError

_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a decimal",
    "float_parsing": "a decimal",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}
_BRANCH_LABELS = {"str", "int", "float", "bool", "list", "dict", "none", "json-or-python"}
_BOUNDS = {
    "greater_than_equal": ("below_min_value", ">=", "ge"),
    "greater_than": ("below_min_value", ">", "gt"),
    "less_than_equal": ("above_max_value", "<=", "le"),
    "less_than": ("above_max_value", "<", "lt"),
}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a value"


def param_path(loc: Sequence[int | str], data: Any) -> str:
    """Render a pydantic ``loc`` as OpenAI's param path, walking the input data.

    Union branch labels (``str``, ``list[...]``) and discriminator tags appear in ``loc``
    but not in the data; walking the data tells them apart from real keys and drops them.
    """
    items = list(loc)
    if items and items[0] in _LOCATIONS:
        items = items[1:]
    parts: list[str] = []
    current = data
    tag_skipped: int | None = None
    for item in items:
        if isinstance(item, int):
            if isinstance(current, list) and 0 <= item < len(current):
                current = current[item]
            else:
                current = None
            parts.append(f"[{item}]")
            continue
        if "[" in item or item in _BRANCH_LABELS:
            continue
        if isinstance(current, dict) and current.get("type") == item and tag_skipped != id(current):
            # A discriminated union names the chosen branch by its tag before its fields.
            tag_skipped = id(current)
            continue
        parts.append(f".{item}" if parts else item)
        current = current.get(item) if isinstance(current, dict) else None
    return "".join(parts)


def to_api_error(errors: Sequence[Any], data: Any) -> InvalidRequestError:
    """The first pydantic error as an ``InvalidRequestError``."""
    error = dict(errors[0])
    kind = str(error.get("type", ""))
    param = param_path(error.get("loc", ()), data) or None
    quoted = f"'{param}'" if param else "the request"
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return InvalidRequestError(
            f"Missing required parameter: {quoted}.",
            param=param,
            code="missing_required_parameter",
        )
    if kind == "union_tag_not_found":
        tag = ctx.get("discriminator", "'type'").strip("'")
        full = f"{param}.{tag}" if param else tag
        return InvalidRequestError(
            f"Missing required parameter: '{full}'.",
            param=full,
            code="missing_required_parameter",
        )
    if kind in ("string_too_long", "too_long"):
        noun = "string" if kind == "string_too_long" else "array"
        limit = ctx.get("max_length")
        length = len(value) if isinstance(value, (str, list, dict)) else ctx.get("actual_length")
        return InvalidRequestError(
            f"Invalid {quoted}: {noun} too long. Expected {'a' if noun == 'string' else 'an'} "
            f"{noun} with maximum length {limit}, but got {'a' if noun == 'string' else 'an'} "
            f"{noun} with length {length} instead.",
            param=param,
            code=f"{noun}_above_max_length",
        )
    if kind in ("string_too_short", "too_short"):
        noun = "string" if kind == "string_too_short" else "array"
        limit = ctx.get("min_length")
        return InvalidRequestError(
            f"Invalid {quoted}: {noun} too short. Expected {'a' if noun == 'string' else 'an'} "
            f"{noun} with minimum length {limit}.",
            param=param,
            code=f"{noun}_below_min_length",
        )
    if kind in _BOUNDS:
        suffix, op, key = _BOUNDS[kind]
        number = "integer" if isinstance(value, int) and not isinstance(value, bool) else "decimal"
        direction = "below minimum" if suffix.startswith("below") else "above maximum"
        return InvalidRequestError(
            f"Invalid {quoted}: {number} {direction} value. Expected a value {op} "
            f"{ctx.get(key)}, but got {json.dumps(value)} instead.",
            param=param,
            code=f"{number}_{suffix}",
        )
    if kind in ("literal_error", "enum", "union_tag_invalid"):
        expected = ctx.get("expected") or ctx.get("expected_tags") or ""
        shown = json.dumps(value)[:80] if not isinstance(value, str) else f"'{value[:80]}'"
        return InvalidRequestError(
            f"Invalid value for {quoted}: {shown}. Supported values are: {expected}.",
            param=param,
            code="invalid_value",
        )
    if kind in _TYPE_NAMES:
        return InvalidRequestError(
            f"Invalid type for {quoted}: expected {_TYPE_NAMES[kind]}, "
            f"but got {_json_type(value)} instead.",
            param=param,
            code="invalid_type",
        )
    if kind in ("object_above_max_properties", "string_above_max_length", "invalid_value"):
        # Our own PydanticCustomError types already carry OpenAI's wording.
        return InvalidRequestError(str(error.get("msg")), param=param, code=kind)
    message = str(error.get("msg", "Invalid value"))
    return InvalidRequestError(f"Invalid {quoted}: {message}.", param=param, code="invalid_value")
