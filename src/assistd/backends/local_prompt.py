"""Chat Completions requests as a small local model can follow them, and its replies back.

Small instruct models have no reliable native tool calling, so tools are described in the
system prompt and the reply is constrained (llama.cpp's JSON-schema decoding) to one JSON
object: either ``{"type": "message", "content": ...}`` or ``{"type": "tool_call", "name":
..., "arguments": {...}}`` with that tool's own parameter schema. The output is therefore
always a valid message or a schema-valid call; whether the call is a wise one is up to the
model. Earlier tool calls and results are rewritten in the same JSON form so that the
conversation reads consistently to the model.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from assistd.backends.base import ChatRequest
from assistd.backends.json_prefix import decode_string_prefix as _decode_prefix

# Sampling fields llama.cpp's server understands under the same names as OpenAI's.
_PASSTHROUGH = ("presence_penalty", "frequency_penalty", "logit_bias")
_ANY_JSON: dict[str, Any] = {"type": "object"}
_MESSAGE_START = re.compile(r'\s*\{\s*"type"\s*:\s*"message"\s*,\s*"content"\s*:\s*"')


@dataclass
class Plan:
    """What to send to llama.cpp and how to read what comes back."""

    body: dict[str, Any]
    tool_mode: bool
    tool_names: list[str] = field(default_factory=list)


def build_plan(request: ChatRequest, *, default_max_tokens: int) -> Plan:
    """Translate a ``ChatRequest`` into a llama.cpp chat-completions body."""
    functions = _functions(request)
    choice = request.tool_choice
    tool_mode = bool(functions) and choice != "none"
    messages = _messages(request.messages)
    body: dict[str, Any] = {
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": request.max_tokens or default_max_tokens,
    }
    for key, value in (
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("stop", request.stop),
        ("seed", request.seed),
    ):
        if value is not None:
            body[key] = value
    body.update({k: request.extra[k] for k in _PASSTHROUGH if k in request.extra})
    if not tool_mode:
        if request.response_format and request.response_format.get("type") != "text":
            body["json_schema"] = _format_schema(request.response_format)
        return Plan(body, tool_mode=False)

    offered = _offered(functions, choice)
    allow_message = choice in (None, "auto")
    variants = [_call_variant(f) for f in offered]
    if allow_message:
        variants.insert(0, _message_variant(request.response_format))
    body["json_schema"] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    _prepend_system(messages, _tool_instructions(offered, allow_message))
    return Plan(body, tool_mode=True, tool_names=[f["name"] for f in offered])


def _functions(request: ChatRequest) -> list[dict[str, Any]]:
    return [t["function"] for t in request.tools if t.get("type") == "function"]


def _offered(functions: list[dict[str, Any]], choice: str | dict[str, Any] | None) -> list[Any]:
    if isinstance(choice, dict):
        name = choice.get("function", {}).get("name")
        named = [f for f in functions if f["name"] == name]
        if named:
            return named
    return functions


def _format_schema(response_format: dict[str, Any]) -> dict[str, Any]:
    if response_format.get("type") == "json_schema":
        schema = response_format.get("json_schema", {}).get("schema")
        if isinstance(schema, dict):
            return schema
    return _ANY_JSON


def _message_variant(response_format: dict[str, Any] | None) -> dict[str, Any]:
    content: dict[str, Any] = {"type": "string"}
    if response_format and response_format.get("type") != "text":
        content = _format_schema(response_format)
    return {
        "type": "object",
        "properties": {"type": {"const": "message"}, "content": content},
        "required": ["type", "content"],
        "additionalProperties": False,
    }


def _call_variant(function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters") or {"type": "object", "properties": {}}
    return {
        "type": "object",
        "properties": {
            "type": {"const": "tool_call"},
            "name": {"const": function["name"]},
            "arguments": parameters,
        },
        "required": ["type", "name", "arguments"],
        "additionalProperties": False,
    }


def _tool_instructions(functions: list[dict[str, Any]], allow_message: bool) -> str:
    lines = ["You can call these tools:"]
    for function in functions:
        description = function.get("description") or ""
        parameters = json.dumps(function.get("parameters") or {}, separators=(",", ":"))
        lines.append(f"- {function['name']}: {description} Parameters: {parameters}")
    lines.append('To call a tool reply {"type": "tool_call", "name": <tool>, "arguments": {...}}.')
    if allow_message:
        lines.append('To answer the user directly reply {"type": "message", "content": <text>}.')
    return "\n".join(lines)


def _prepend_system(messages: list[dict[str, Any]], text: str) -> None:
    if messages and messages[0]["role"] == "system":
        messages[0]["content"] = f"{messages[0]['content']}\n\n{text}"
    else:
        messages.insert(0, {"role": "system", "content": text})


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for part in content or []:
        if part.get("type") == "text":
            parts.append(part.get("text", ""))
        elif part.get("type") in ("image_url", "image_file"):
            parts.append("[image]")
    return "\n".join(parts)


def _messages(source: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OpenAI messages as plain system/user/assistant turns any chat template accepts.

    System and developer messages merge into one leading system message (some templates
    reject a system turn later on); tool calls and results become JSON text turns.
    """
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for message in source:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text(message.get("content")))
        elif role == "assistant":
            pieces = [_text(message.get("content"))] if message.get("content") else []
            for call in message.get("tool_calls") or []:
                function = call.get("function", {})
                call_names[call.get("id", "")] = function.get("name", "")
                pieces.append(_call_text(function))
            turns.append({"role": "assistant", "content": "\n".join(pieces)})
        elif role == "tool":
            name = call_names.get(message.get("tool_call_id", ""), "the tool")
            result = _text(message.get("content"))
            turns.append({"role": "user", "content": f"Result of {name}: {result}"})
        else:
            turns.append({"role": "user", "content": _text(message.get("content"))})
    if system:
        turns.insert(0, {"role": "system", "content": "\n\n".join(system)})
    return turns


def _call_text(function: dict[str, Any]) -> str:
    try:
        arguments = json.loads(function.get("arguments") or "{}")
    except ValueError:
        arguments = {}
    return json.dumps({"type": "tool_call", "name": function.get("name"), "arguments": arguments})


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")


@dataclass
class Reply:
    """A finished tool-mode reply: content not yet shown, or a call; ``complete`` is false
    for output cut short before it became valid JSON."""

    rest: str = ""
    call: dict[str, Any] | None = None
    complete: bool = True


class ReplyReader:
    """Reads a constrained tool-mode reply as it streams.

    Message content is streamed as soon as its JSON string can be decoded; a tool call is
    known only once its arguments are complete, so it comes out at the end.
    """

    def __init__(self) -> None:
        self.raw = ""
        self._sent = 0

    def feed(self, piece: str) -> str:
        """Add generated text; return new message content that can be shown now."""
        self.raw += piece
        match = _MESSAGE_START.match(self.raw)
        if match is None:
            return ""
        decoded = _decode_prefix(self.raw[match.end() :])
        new = decoded[self._sent :]
        self._sent = len(decoded)
        return new

    def finish(self) -> Reply:
        """What the whole reply was, once generation has ended."""
        try:
            reply = json.loads(self.raw)
        except ValueError:
            return Reply(complete=False)
        if not isinstance(reply, dict):
            return Reply(complete=False)
        if reply.get("type") == "tool_call":
            return Reply(call=reply)
        content = reply.get("content", "")
        text = content if isinstance(content, str) else json.dumps(content)
        rest = text[self._sent :]
        self._sent = len(text)
        return Reply(rest=rest)
