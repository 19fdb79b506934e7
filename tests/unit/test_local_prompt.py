"""How requests are put to the local model and how its constrained replies are read."""

from __future__ import annotations

import json
from typing import Any

import pytest

from assistd.backends.base import ChatRequest
from assistd.backends.local_prompt import ReplyReader, build_plan

TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Find a word.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}}},
    },
}
OTHER = {"type": "function", "function": {"name": "other"}}


def _plan(**kwargs: Any) -> Any:
    messages = kwargs.pop("messages", [{"role": "user", "content": "hi"}])
    return build_plan(ChatRequest(model="m", messages=messages, **kwargs), default_max_tokens=99)


def test_plain_request_streams_text_without_a_schema() -> None:
    plan = _plan(temperature=0.5, top_p=0.9, stop=["\n"], seed=7, max_tokens=12)
    assert not plan.tool_mode
    assert "json_schema" not in plan.body
    body = plan.body
    assert (body["temperature"], body["top_p"], body["stop"], body["seed"]) == (0.5, 0.9, ["\n"], 7)
    assert body["max_tokens"] == 12
    assert body["stream_options"] == {"include_usage": True}
    assert _plan().body["max_tokens"] == 99


def test_auto_tool_choice_allows_a_message_or_any_tool() -> None:
    plan = _plan(tools=[TOOL, OTHER])
    variants = plan.body["json_schema"]["anyOf"]
    assert [v["properties"]["type"]["const"] for v in variants] == [
        "message",
        "tool_call",
        "tool_call",
    ]
    assert variants[1]["properties"]["name"] == {"const": "lookup"}
    assert variants[1]["properties"]["arguments"] == TOOL["function"]["parameters"]
    # Functions without parameters still get an object schema.
    assert variants[2]["properties"]["arguments"]["type"] == "object"
    system = plan.body["messages"][0]
    assert system["role"] == "system"
    assert "lookup: Find a word." in system["content"]


def test_required_and_named_tool_choice_force_a_call() -> None:
    required = _plan(tools=[TOOL, OTHER], tool_choice="required").body["json_schema"]
    assert [v["properties"]["type"]["const"] for v in required["anyOf"]] == ["tool_call"] * 2
    named = _plan(
        tools=[TOOL, OTHER], tool_choice={"type": "function", "function": {"name": "other"}}
    )
    assert named.body["json_schema"]["properties"]["name"] == {"const": "other"}
    assert named.tool_names == ["other"]
    assert not _plan(tools=[TOOL], tool_choice="none").tool_mode


def test_response_format_constrains_plain_and_tool_replies() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    assert _plan(response_format=fmt).body["json_schema"] == schema
    assert _plan(response_format={"type": "json_object"}).body["json_schema"] == {"type": "object"}
    assert "json_schema" not in _plan(response_format={"type": "text"}).body
    message = _plan(tools=[TOOL], response_format=fmt).body["json_schema"]["anyOf"][0]
    assert message["properties"]["content"] == schema


def test_history_is_rewritten_for_plain_chat_templates() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "define"}, {"type": "image_url"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"word":"x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "a letter"},
        {"role": "developer", "content": "Cite."},
    ]
    out = _plan(messages=messages).body["messages"]
    assert out[0] == {"role": "system", "content": "Be brief.\n\nCite."}
    assert out[1] == {"role": "user", "content": "define\n[image]"}
    assert json.loads(out[2]["content"]) == {
        "type": "tool_call",
        "name": "lookup",
        "arguments": {"word": "x"},
    }
    assert out[3] == {"role": "user", "content": "Result of lookup: a letter"}


def _read(pieces: list[str]) -> tuple[list[str], Any]:
    reader = ReplyReader()
    shown = [reader.feed(p) for p in pieces]
    return shown, reader.finish()


def test_message_content_streams_as_it_is_decoded() -> None:
    raw = json.dumps({"type": "message", "content": 'Say "hi" \\ café 😀\nend'})
    shown, reply = _read([raw[i : i + 3] for i in range(0, len(raw), 3)])
    assert sum(1 for s in shown if s) > 3
    assert "".join(shown) + reply.rest == 'Say "hi" \\ café 😀\nend'
    assert reply.call is None
    assert reply.complete


@pytest.mark.parametrize("ascii_only", [True, False])
def test_escapes_split_across_pieces(ascii_only: bool) -> None:
    raw = json.dumps({"type": "message", "content": "a😀b\u00e9"}, ensure_ascii=ascii_only)
    shown, reply = _read(list(raw))
    assert "".join(shown) + reply.rest == "a😀b\u00e9"


def test_tool_call_comes_out_whole_at_the_end() -> None:
    raw = '{\n  "type": "tool_call", "name": "lookup", "arguments": {"word": "x"}}'
    shown, reply = _read([raw[:20], raw[20:]])
    assert shown == ["", ""]
    assert reply.call == {"type": "tool_call", "name": "lookup", "arguments": {"word": "x"}}


def test_output_cut_short_is_incomplete() -> None:
    shown, reply = _read(['{"type": "message", "content": "abc'])
    assert shown == ["abc"]
    assert not reply.complete
    assert reply.call is None


def test_structured_content_is_returned_as_json_text() -> None:
    _, reply = _read(['{"type": "message", "content": {"a": 1}}'])
    assert json.loads(reply.rest) == {"a": 1}
