"""Request bodies from bytes to JSON values, refusing what the rest of the server cannot hold.

``json.loads`` alone lets through three things that later surface as 500s: nesting deep
enough to exhaust the recursion limit (in the parser itself, or later in pydantic or
``json.dumps``), ``\\u0000`` (PostgreSQL's ``text`` and ``jsonb`` cannot store it) and
lone surrogates such as ``\\ud800`` (no UTF-8 encoding exists, so the response or the
database write fails). Each is a 400 here, naming the parameter where it can.
"""

from __future__ import annotations

import json
import re

from assistd.errors import InvalidRequestError

# Deep enough for any real request (a strict JSON schema nests objects 10 levels, about 25
# JSON levels in a tool definition); shallow enough that nothing downstream recurses near
# Python's limit (json.loads fails at about 1000 levels, pydantic's serializer sooner).
MAX_JSON_DEPTH = 64

UNPARSABLE = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)
# Only an escape can put NUL or a surrogate into a decoded string: strict UTF-8 decoding
# refuses encoded surrogates and strict JSON refuses raw control characters. A body without
# such an escape (nearly every body) skips the per-string check.
_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")
_TOO_DEEP = f"nested too deeply (the limit is {MAX_JSON_DEPTH} levels of arrays and objects)"


def parse_json_body(raw: bytes) -> object:
    """The JSON value of a request body, or ``InvalidRequestError``; empty means ``{}``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: it is not valid UTF-8 "
            f"(invalid byte at position {exc.start})."
        ) from None
    text = text.removeprefix("\ufeff")  # json.loads on bytes accepted a BOM: keep doing so
    if not text.strip():
        return {}
    try:
        data: object = json.loads(text)
    except RecursionError:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: it is {_TOO_DEEP}."
        ) from None
    except ValueError:
        raise InvalidRequestError(UNPARSABLE) from None
    _check_values(data, check_strings=_SUSPECT_ESCAPE.search(text) is not None)
    return data


def _check_values(data: object, *, check_strings: bool) -> None:
    """Depth and, when asked, NUL and lone surrogates, walked iteratively (no recursion)."""
    Path = tuple[str | int, ...]
    stack: list[tuple[object, int, Path]] = [(data, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            if check_strings:
                _check_string(value, path)
            continue
        if not isinstance(value, (dict, list)):
            continue  # a bare number, boolean or null as the whole body
        if depth >= MAX_JSON_DEPTH:
            # Named by its top-level field: the full path would be MAX_JSON_DEPTH steps long.
            field = path[:1] if path and isinstance(path[0], str) else ()
            raise _invalid(field, f"it is {_TOO_DEEP}")
        items: list[tuple[str | int, object]]
        if isinstance(value, dict):
            items = list(value.items())
            if check_strings:
                for key in value:
                    _check_string(key, path, key=True)
        else:
            items = list(enumerate(value))
        stack.extend(
            (item, depth + 1, (*path, step))
            for step, item in items
            if isinstance(item, (str, dict, list))
        )


def _check_string(value: str, path: tuple[str | int, ...], *, key: bool = False) -> None:
    what = "a key" if key else "the string"
    if "\x00" in value:
        raise _invalid(path, f"{what} contains a null character (\\u0000)")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            problem = f"{what} contains a lone UTF-16 surrogate (not valid Unicode)"
            raise _invalid(path, problem) from None


def _invalid(path: tuple[str | int, ...], problem: str) -> InvalidRequestError:
    param = _param(path)
    if param is None:
        return InvalidRequestError(f"Invalid request body: {problem}.", code="invalid_value")
    return InvalidRequestError(f"Invalid '{param}': {problem}.", param=param, code="invalid_value")


def _param(path: tuple[str | int, ...]) -> str | None:
    """OpenAI's param path (``tools[0].function.parameters``) for a location in the body."""
    parts: list[str] = []
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        else:
            parts.append(f".{step}" if parts else step)
    return "".join(parts) or None
