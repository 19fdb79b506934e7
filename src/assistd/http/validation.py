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
# Discriminator fields: most unions are tagged by "type", chat messages by "role".
_TAG_KEYS = ("type", "role")
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


def _query_number(value: Any) -> Any:
    """A query parameter arrives as text ("0"): bounds errors report it as the number."""
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                continue
    return value


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
        if (
            isinstance(current, dict)
            and item in (current.get(key) for key in _TAG_KEYS)
            and tag_skipped != id(current)
        ):
            # A discriminated union names the chosen branch by its tag before its fields.
            tag_skipped = id(current)
            continue
        parts.append(f".{item}" if parts else item)
        current = current.get(item) if isinstance(current, dict) else None
    return "".join(parts)


def _union_base(loc: Sequence[int | str]) -> tuple[int | str, ...] | None:
    """The location up to the first union branch label, or None when there is none."""
    for i, item in enumerate(loc):
        if isinstance(item, str) and ("[" in item or item in _BRANCH_LABELS):
            return tuple(loc[:i])
    return None


def _pick(errors: Sequence[Any], data: Any) -> dict[str, Any]:
    """The first error; among the branches of a union, the one that got furthest into the data.

    For ``content: [{"type": "text", "text": 5}]`` pydantic reports the ``str`` branch first
    ("expected a string"), but the client clearly meant the array and its bad ``text``.
    """
    first = dict(errors[0])
    base = _union_base(first.get("loc", ()))
    if base is None:
        return first
    siblings = [dict(e) for e in errors if _union_base(e.get("loc", ())) == base]

    def depth(error: dict[str, Any]) -> tuple[int, bool]:
        # A bad or missing tag means the input is an object aimed at the tagged branch.
        tagged = error.get("type") in ("union_tag_invalid", "union_tag_not_found")
        return len(param_path(error.get("loc", ()), data)), tagged

    return max(siblings, key=depth)


def to_api_error(errors: Sequence[Any], data: Any) -> InvalidRequestError:
    """The first pydantic error (the best union branch of it) as an ``InvalidRequestError``."""
    error = _pick(errors, data)
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
        noun = "string" if kind == "string_too_long" or isinstance(value, str) else "array"
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
        noun = "string" if kind == "string_too_short" or isinstance(value, str) else "array"
        limit = ctx.get("min_length")
        return InvalidRequestError(
            f"Invalid {quoted}: {noun} too short. Expected {'a' if noun == 'string' else 'an'} "
            f"{noun} with minimum length {limit}.",
            param=param,
            code=f"{noun}_below_min_length",
        )
    if kind in _BOUNDS:
        suffix, op, key = _BOUNDS[kind]
        value = _query_number(value)
        number = "integer" if isinstance(value, int) and not isinstance(value, bool) else "decimal"
        direction = "below minimum" if suffix.startswith("below") else "above maximum"
        return InvalidRequestError(
            f"Invalid {quoted}: {number} {direction} value. Expected a value {op} "
            f"{ctx.get(key)}, but got {json.dumps(value)} instead.",
            param=param,
            code=f"{number}_{suffix}",
        )
    if kind == "union_tag_invalid":
        # The tag names the branch: report the tag field and its value, not the whole object.
        tag = ctx.get("discriminator", "'type'").strip("'")
        full = f"{param}.{tag}" if param else tag
        return InvalidRequestError(
            f"Invalid value for '{full}': '{str(ctx.get('tag', ''))[:80]}'. "
            f"Supported values are: {ctx.get('expected_tags', '')}.",
            param=full,
            code="invalid_value",
        )
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected") or ""
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
