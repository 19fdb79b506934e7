"""OpenAI's spec as the fuzz tests load it, and the operations of it that assistd serves.

``tests/data/openapi.yaml`` is a verbatim copy of ``shared/reference/openapi.yaml`` (OpenAI's
public OpenAPI spec, openai/openai-openapi 2.3.0, 2026-08-21), so a clone without ``shared/``
beside it runs the same tests; ``test_spec_copy_is_the_reference`` notices when they differ.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml

from assistd.config import Settings
from assistd.http.app import API_PREFIX, create_app
from assistd.services.container import Services

SPEC = Path(__file__).resolve().parents[1] / "data" / "openapi.yaml"
SHARED_SPEC = Path(__file__).resolve().parents[3] / "shared" / "reference" / "openapi.yaml"
SPEC_SHA256 = "43791b44527003a4fc0590819c8979b5475c45f12c4276d65f4fb3f0fe573076"

# assistd routes under /v1 that OpenAI's spec does not document (see Extensions in the README).
EXTENSIONS = {("GET", "/threads"), ("GET", "/usage")}

# (schema, property) that the spec types without null although OpenAI answers null when the
# field is unset: the SDK's models (generated from OpenAI's own spec) type each Optional.
NULLABLE = [
    ("OpenAIFile", "expires_at"),
    ("OpenAIFile", "status_details"),
    ("VectorStoreObject", "expires_after"),
    # The spec's own example of a chat completion has "system_fingerprint": null.
    ("CreateChatCompletionResponse", "system_fingerprint"),
    ("CreateChatCompletionStreamResponse", "system_fingerprint"),
]

METHODS = {"get", "post", "put", "patch", "delete"}
# The operations whose `stream: true` answers are an assistant event stream.
RUN_STREAMS = [
    "/threads/runs",
    "/threads/{thread_id}/runs",
    "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs",
]
# Every operation (all POST) that answers `stream: true` with server-sent events.
STREAMING = {"/chat/completions", *RUN_STREAMS}


def _or_null(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def corrected_spec() -> dict[str, Any]:
    """The spec, corrected where OpenAI's API answers otherwise than the spec documents
    (assistd follows the API its clients see); each correction says why."""
    spec: dict[str, Any] = yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    schemas = spec["components"]["schemas"]
    # An empty page has "first_id": null and "last_id": null (the API does, and the SDK's
    # cursor pages type them Optional); the spec's Assistants-era list schemas say string.
    for name, schema in schemas.items():
        props = schema.get("properties", {})
        if name.startswith("List") and props.get("first_id", {}).get("type") == "string":
            for field in ("first_id", "last_id"):
                props[field] = _or_null(props[field])
    for name, field in NULLABLE:
        props = schemas[name]["properties"]
        props[field] = _or_null(props[field])
    _document_streams(spec)
    # Files uploaded for "evals" (a purpose CreateFileRequest lists) are answered with that
    # purpose, as OpenAI does; the file object's enum lacks it.
    schemas["OpenAIFile"]["properties"]["purpose"]["enum"].append("evals")
    return spec


def _json_data(schema: dict[str, Any]) -> dict[str, Any]:
    """An SSE ``data`` field carrying JSON that matches ``schema`` (Schemathesis reads each
    event as an object of its fields, as OpenAPI 3.2 describes event streams)."""
    return {"type": "string", "contentMediaType": "application/json", "contentSchema": schema}


def _document_streams(spec: dict[str, Any]) -> None:
    """Event streams described event by event. The spec gives a chat completion stream the
    schema of one chunk (each event's data is one, but the last is ``[DONE]``) and
    documents the run-creating operations as answering a JSON run only; their streams are
    its AssistantStreamEvent, each event's ``data`` a JSON object (``done``: ``[DONE]``)."""
    schemas = spec["components"]["schemas"]
    chunk = {"$ref": "#/components/schemas/CreateChatCompletionStreamResponse"}
    chat = spec["paths"]["/chat/completions"]["post"]["responses"]["200"]["content"]
    chat["text/event-stream"] = {
        "schema": {
            "type": "object",
            "required": ["data"],
            "properties": {"data": {"if": {"const": "[DONE]"}, "else": _json_data(chunk)}},
        }
    }
    branches = []
    for ref in schemas["AssistantStreamEvent"]["oneOf"]:
        group = schemas[ref["$ref"].rsplit("/", 1)[1]]
        branches.extend(group.get("oneOf", [group]))
    names = [branch["properties"]["event"]["enum"][0] for branch in branches]
    event = {
        "type": "object",
        "required": ["event", "data"],
        "properties": {"event": {"enum": names}},
        "allOf": [
            {
                "if": {"properties": {"event": {"const": name}}},
                "then": {
                    "properties": {
                        "data": data if data.get("type") == "string" else _json_data(data)
                    }
                },
            }
            for name, data in zip(names, (b["properties"]["data"] for b in branches), strict=True)
        ],
    }
    for path in RUN_STREAMS:
        content = spec["paths"][path]["post"]["responses"]["200"]["content"]
        content["text/event-stream"] = {"schema": event}


def template(path: str) -> str:
    """The path with its parameters unnamed, so route and spec templates compare."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def served_routes() -> set[tuple[str, str]]:
    """(METHOD, path below /v1) of every /v1 route, from the app's own route table."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        app = create_app(settings, Services.build(settings))
        # Every /v1 route is in the app's schema (only the console's router is left out).
        paths: dict[str, dict[str, Any]] = app.openapi()["paths"]
    return {
        (method.upper(), path.removeprefix(API_PREFIX))
        for path, operations in paths.items()
        if path.startswith(API_PREFIX + "/")
        for method in operations
    }


def documented(spec: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(METHOD, unnamed template) -> the spec's own path, for every operation in it."""
    return {
        (method.upper(), template(path)): path
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }
