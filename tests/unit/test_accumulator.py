"""The accumulator folds one completion's chunks into effects and an outcome, writing nothing.

Chunks are fed by hand in the shapes backends produce (``ChatChunk`` / ``ToolCallDelta``),
so each test pins exactly which effect a piece causes and in what order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from assistd.backends.base import ChatChunk, ToolCallDelta, Usage
from assistd.backends.json_prefix import decode_string_prefix
from assistd.executor.accumulator import (
    Accumulator,
    CloseMessage,
    Effect,
    MessageDelta,
    OpenMessage,
    OpenToolStep,
    StepDelta,
    new_call_id,
    usage_dict,
)
from assistd.executor.context import estimate_tokens
from assistd.store.records import JsonObject, Run
from assistd.store.tool_calls import ModelView, ToolCall
from assistd.tools.base import Tool
from assistd.tools.citations import CitationStream
from tests.unit.loop_support import annotation

MODEL = "gpt-4o"
_CMD_START = '{"cmd": "'


class Shell(Tool):
    """A built-in tool fixture that shows its command while the model writes it, the way
    code_interpreter shows its code."""

    type: ClassVar[str] = "shell"

    def definition(self, entry: JsonObject) -> JsonObject:
        return {"name": "shell", "description": "Run a command.", "parameters": {}}

    def announce(self, call_id: str) -> JsonObject:
        return {"id": call_id, "type": "shell", "shell": {"input": "", "outputs": []}}

    def input_delta(self, arguments: str) -> str | None:
        if not arguments.startswith(_CMD_START):
            return None
        return decode_string_prefix(arguments[len(_CMD_START) :])

    def result_delta(self, call: ToolCall, streamed: str) -> JsonObject | None:
        command = str(call.section["input"])
        return {
            "type": "shell",
            "shell": {"input": command[len(streamed) :], "outputs": call.section["outputs"]},
        }

    async def execute(
        self,
        run: Run,
        entry: JsonObject,
        call_id: str,
        arguments: str,
        ordinal: int,
        budget: int | None = None,
    ) -> ToolCall:
        raise AssertionError("the accumulator never executes tools")


class Search(Shell):
    """A built-in tool fixture that shows nothing of its input while it streams."""

    type: ClassVar[str] = "search"

    def announce(self, call_id: str) -> JsonObject:
        return {"id": call_id, "type": "search", "search": {}}

    def input_delta(self, arguments: str) -> str | None:
        return None


def text(value: str) -> ChatChunk:
    return ChatChunk(text=value)


def call(index: int, name: str | None = None, arguments: str = "") -> ChatChunk:
    upstream_id = f"up_{index}" if name else None
    return ChatChunk(tool_calls=[ToolCallDelta(index, upstream_id, name, arguments)])


def feed(acc: Accumulator, *chunks: ChatChunk) -> list[Effect]:
    effects: list[Effect] = []
    for chunk in chunks:
        effects += acc.feed(chunk)
    return effects


def text_delta(value: str, index: int = 0, annotations: list[Any] | None = None) -> MessageDelta:
    body: JsonObject = {"value": value}
    if annotations is not None:
        body["annotations"] = annotations
    return MessageDelta({"index": index, "type": "text", "text": body})


def args_delta(index: int, arguments: str) -> StepDelta:
    return StepDelta({"index": index, "type": "function", "function": {"arguments": arguments}})


def announced(index: int, call_id: str, name: str) -> StepDelta:
    return StepDelta(
        {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": "", "output": None},
        }
    )


def text_part(value: str, annotations: Sequence[JsonObject] = ()) -> JsonObject:
    return {"type": "text", "text": {"value": value, "annotations": list(annotations)}}


# --- text only ---------------------------------------------------------------------------


def test_text_opens_one_message_and_sends_a_delta_per_piece() -> None:
    acc = Accumulator(MODEL)
    effects = feed(acc, text("Hello"), text(" wor"), text("ld"))
    # Only the first delta carries annotations=[]: the SDK builds the list from it.
    assert effects == [
        OpenMessage(),
        text_delta("Hello", annotations=[]),
        text_delta(" wor"),
        text_delta("ld"),
    ]
    assert acc.message == "open"
    assert not acc.tool_step


def test_empty_text_and_bare_finish_chunks_open_nothing() -> None:
    acc = Accumulator(MODEL)
    assert feed(acc, text(""), ChatChunk(finish_reason="stop", usage=Usage(3, 0))) == []
    assert acc.message == "none"
    assert acc.finish_text() == []
    assert acc.close_message("completed") is None
    assert acc.partial_content() is None
    assert acc.outcome().text == ""
    assert acc.outcome().calls == []


def test_closing_a_text_message_carries_its_content_and_the_reported_usage() -> None:
    acc = Accumulator(MODEL)
    feed(acc, text("Hello"), text(" world"), ChatChunk(finish_reason="stop", usage=Usage(7, 2)))
    closed = acc.close_message("completed")
    assert closed == CloseMessage("completed", None, [text_part("Hello world")], Usage(7, 2))
    assert acc.message == "closed"
    # A message ends once: the run loop may ask again on its last turn.
    assert acc.close_message("completed") is None


def test_an_incomplete_message_keeps_its_reason() -> None:
    acc = Accumulator(MODEL)
    feed(acc, text("cut "), text("short"), ChatChunk(finish_reason="length"))
    closed = acc.close_message("incomplete", "max_tokens")
    assert closed is not None
    assert (closed.status, closed.reason) == ("incomplete", "max_tokens")
    assert closed.content == [text_part("cut short")]


# --- outcome: finish reason and usage ----------------------------------------------------


def test_outcome_carries_text_finish_reason_and_reported_usage() -> None:
    acc = Accumulator(MODEL)
    feed(acc, text("Hi"), text(" there"), ChatChunk(finish_reason="stop", usage=Usage(12, 2)))
    outcome = acc.outcome()
    assert outcome.text == "Hi there"
    assert outcome.calls == []
    assert outcome.finish_reason == "stop"
    assert outcome.usage == Usage(12, 2)


def test_the_last_reported_finish_reason_and_usage_win() -> None:
    acc = Accumulator(MODEL)
    feed(
        acc,
        text("x"),
        ChatChunk(finish_reason="length", usage=Usage(1, 1)),
        # A trailing usage-only chunk (stream_options.include_usage) keeps the reason.
        ChatChunk(usage=Usage(10, 4)),
    )
    outcome = acc.outcome()
    assert outcome.finish_reason == "length"
    assert outcome.usage == Usage(10, 4)


def test_no_finish_reason_is_none() -> None:
    acc = Accumulator(MODEL)
    feed(acc, text("stream cut"))
    assert acc.outcome().finish_reason is None


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4-turbo", "some-local-model"])
def test_usage_is_estimated_with_the_runs_tokenizer_when_none_is_reported(model: str) -> None:
    pieces = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog."]
    acc = Accumulator(model)
    feed(acc, *[text(p) for p in pieces], ChatChunk(finish_reason="stop"))
    expected = estimate_tokens("".join(pieces), model)
    assert expected > 0
    assert acc.outcome().usage == Usage(0, expected)
    closed = acc.close_message("completed")
    assert closed is not None
    assert closed.usage == Usage(0, expected)


def test_usage_dict_has_the_total() -> None:
    assert usage_dict(Usage(5, 7)) == {
        "prompt_tokens": 5,
        "completion_tokens": 7,
        "total_tokens": 12,
    }


# --- tool calls only ---------------------------------------------------------------------


def test_a_function_call_opens_a_tool_step_and_is_announced_with_our_own_id() -> None:
    acc = Accumulator(MODEL)
    effects = feed(acc, call(0, "get_weather"))
    call_id = acc.calls[0].id
    assert effects == [OpenToolStep(), announced(0, call_id, "get_weather")]
    # Never the upstream's id: ids must stay distinct across a run's completions.
    assert call_id != "up_0"
    assert call_id.startswith("call_")
    assert len(call_id) == len("call_") + 24
    assert acc.message == "none"
    assert acc.tool_step


def test_arguments_split_across_chunks_stream_as_deltas_and_join_in_the_outcome() -> None:
    acc = Accumulator(MODEL)
    pieces = ['{"ci', 'ty": "Pa', "", 'ris"}']
    effects = feed(acc, call(0, "get_weather"), *[call(0, arguments=p) for p in pieces])
    # An empty piece sends nothing.
    assert effects[2:] == [args_delta(0, '{"ci'), args_delta(0, 'ty": "Pa'), args_delta(0, 'ris"}')]
    (made,) = acc.outcome().calls
    assert made.name == "get_weather"
    assert json.loads(made.arguments) == {"city": "Paris"}


def test_arguments_sent_with_the_name_follow_the_announcement() -> None:
    acc = Accumulator(MODEL)
    effects = feed(acc, call(0, "f", '{"a": 1}'))
    assert effects == [
        OpenToolStep(),
        announced(0, acc.calls[0].id, "f"),
        args_delta(0, '{"a": 1}'),
    ]


def test_a_call_is_announced_only_once_its_name_arrives() -> None:
    acc = Accumulator(MODEL)
    # Some upstreams send argument pieces before the name.
    assert feed(acc, call(0, arguments='{"q"')) == [OpenToolStep()]
    assert feed(acc, call(0, arguments=": ")) == []
    effects = feed(acc, call(0, "lookup", '"x"}'))
    call_id = acc.calls[0].id
    # The announcement is followed by everything held back so far, in one delta.
    assert effects == [announced(0, call_id, "lookup"), args_delta(0, '{"q": "x"}')]
    assert acc.calls[0].announced
    assert feed(acc, call(0, arguments=" ")) == [args_delta(0, " ")]


def test_a_call_that_never_gets_a_name_is_never_announced() -> None:
    acc = Accumulator(MODEL)
    assert feed(acc, call(0, arguments="{}"), ChatChunk(finish_reason="tool_calls")) == [
        OpenToolStep()
    ]
    (made,) = acc.outcome().calls
    assert (made.name, made.arguments, made.announced) == ("", "{}", False)


def test_several_calls_interleaved_by_index() -> None:
    acc = Accumulator(MODEL)
    effects = feed(
        acc,
        ChatChunk(tool_calls=[ToolCallDelta(0, "u0", "alpha"), ToolCallDelta(1, "u1", "beta")]),
        call(1, arguments='{"b":'),
        call(0, arguments='{"a":'),
        call(1, arguments=" 2}"),
        call(0, arguments=" 1}"),
        ChatChunk(finish_reason="tool_calls"),
    )
    first, second = acc.calls[0].id, acc.calls[1].id
    assert first != second
    assert effects == [
        OpenToolStep(),
        announced(0, first, "alpha"),
        announced(1, second, "beta"),
        args_delta(1, '{"b":'),
        args_delta(0, '{"a":'),
        args_delta(1, " 2}"),
        args_delta(0, " 1}"),
    ]
    outcome = acc.outcome()
    assert [(c.name, json.loads(c.arguments)) for c in outcome.calls] == [
        ("alpha", {"a": 1}),
        ("beta", {"b": 2}),
    ]
    assert outcome.finish_reason == "tool_calls"


def test_outcome_lists_calls_by_index_not_by_arrival() -> None:
    acc = Accumulator(MODEL)
    feed(acc, call(2, "third"), call(0, "first"), call(1, "second"))
    assert [c.name for c in acc.outcome().calls] == ["first", "second", "third"]


def test_only_one_tool_step_opens_for_many_calls() -> None:
    acc = Accumulator(MODEL)
    effects = feed(acc, call(0, "a", "{}"), call(1, "b", "{}"), call(2, "c", "{}"))
    assert [e for e in effects if isinstance(e, OpenToolStep)] == [OpenToolStep()]


def test_call_ids_are_fresh_each_time() -> None:
    ids = {new_call_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(i.startswith("call_") and len(i) == 29 for i in ids)
    # Our ids avoid '-' and '_' after the prefix so they read as one token.
    assert all("-" not in i[5:] and "_" not in i[5:] for i in ids)


# --- text and tool calls in one completion ----------------------------------------------


def test_text_then_a_call_closes_the_message_before_the_tool_step_opens() -> None:
    acc = Accumulator(MODEL)
    effects = feed(acc, text("Let me"), text(" check."), call(0, "get_weather", "{}"))
    call_id = acc.calls[0].id
    estimate = estimate_tokens("Let me check.", MODEL)
    assert effects == [
        OpenMessage(),
        text_delta("Let me", annotations=[]),
        text_delta(" check."),
        # The reported usage belongs to the tool step: the message gets an estimate.
        CloseMessage("completed", None, [text_part("Let me check.")], Usage(0, estimate)),
        OpenToolStep(),
        announced(0, call_id, "get_weather"),
        args_delta(0, "{}"),
    ]
    assert acc.message == "closed"
    assert acc.close_message("completed") is None


def test_a_chunk_with_text_and_a_call_handles_the_text_first() -> None:
    acc = Accumulator(MODEL)
    chunk = ChatChunk(text="On it.", tool_calls=[ToolCallDelta(0, "u", "f", "")])
    effects = acc.feed(chunk)
    assert [type(e) for e in effects] == [
        OpenMessage,
        MessageDelta,
        CloseMessage,
        OpenToolStep,
        StepDelta,
    ]
    assert acc.outcome().text == "On it."


def test_text_interleaved_after_the_first_call_is_dropped() -> None:
    acc = Accumulator(MODEL)
    effects = feed(
        acc,
        text("Checking"),
        call(0, "f"),
        text(" (thinking aloud)"),
        call(0, arguments='{"x": 1}'),
        text(" more"),
        call(1, "g", "{}"),
        ChatChunk(finish_reason="tool_calls", usage=Usage(20, 9)),
    )
    # Once the tool step is open no message delta follows: the message already closed.
    after_step = effects[effects.index(OpenToolStep()) :]
    assert not any(isinstance(e, MessageDelta | OpenMessage | CloseMessage) for e in after_step)
    outcome = acc.outcome()
    assert outcome.text == "Checking"
    assert [(c.name, c.arguments) for c in outcome.calls] == [("f", '{"x": 1}'), ("g", "{}")]
    # The completion's reported usage goes to the outcome (and so to the tool step).
    assert outcome.usage == Usage(20, 9)


def test_a_call_flushes_text_held_back_for_a_marker_before_the_message_closes() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a"}))
    effects = feed(acc, text("See 【0:"), call(0, "f"))
    assert effects[:4] == [
        OpenMessage(),
        text_delta("See ", annotations=[]),
        text_delta("【0:"),
        CloseMessage(
            "completed", None, [text_part("See 【0:")], Usage(0, estimate_tokens("See 【0:", MODEL))
        ),
    ]


# --- built-in tool calls -----------------------------------------------------------------


def test_a_builtin_call_is_announced_in_its_own_shape() -> None:
    acc = Accumulator(MODEL, builtin={"shell": Shell()})
    effects = feed(acc, call(0, "shell"))
    call_id = acc.calls[0].id
    assert effects == [
        OpenToolStep(),
        StepDelta(
            {"index": 0, "id": call_id, "type": "shell", "shell": {"input": "", "outputs": []}}
        ),
    ]


def test_a_builtin_calls_input_streams_through_its_input_delta() -> None:
    acc = Accumulator(MODEL, builtin={"shell": Shell()})
    effects = feed(
        acc,
        call(0, "shell", '{"cmd'),
        call(0, arguments='": "ec'),
        call(0, arguments="ho hi"),
        call(0, arguments='"}'),
    )
    inputs = [e.call["shell"]["input"] for e in effects if isinstance(e, StepDelta)][1:]
    # Only new input goes out; the JSON around it never does.
    assert inputs == ["ec", "ho hi"]
    assert effects[-1] == StepDelta({"index": 0, "type": "shell", "shell": {"input": "ho hi"}})
    assert acc.calls[0].streamed == "echo hi"
    assert acc.calls[0].arguments == '{"cmd": "echo hi"}'
    assert not any(isinstance(e, StepDelta) and "function" in e.call for e in effects)


def test_a_builtin_input_escape_cut_in_two_waits_for_its_second_half() -> None:
    acc = Accumulator(MODEL, builtin={"shell": Shell()})
    effects = feed(acc, call(0, "shell", '{"cmd": "a\\'), call(0, arguments='nb"}'))
    # The announcement shows an empty input; "\\" alone decodes to nothing yet.
    inputs = [e.call["shell"]["input"] for e in effects if isinstance(e, StepDelta)]
    assert inputs == ["", "a", "\nb"]
    assert acc.calls[0].streamed == "a\nb"


def test_a_builtin_that_shows_no_input_is_only_announced() -> None:
    acc = Accumulator(MODEL, builtin={"search": Search()})
    effects = feed(acc, call(0, "search", '{"queries"'), call(0, arguments=': ["x"]}'))
    assert effects == [
        OpenToolStep(),
        StepDelta({"index": 0, "id": acc.calls[0].id, "type": "search", "search": {}}),
    ]
    assert acc.calls[0].arguments == '{"queries": ["x"]}'


def test_builtin_and_function_calls_in_one_completion_keep_their_shapes() -> None:
    acc = Accumulator(MODEL, builtin={"shell": Shell()})
    effects = feed(
        acc,
        call(0, "shell", '{"cmd": "ls'),
        call(1, "get_weather", '{"city":'),
        call(0, arguments=' -l"}'),
        call(1, arguments=' "Oslo"}'),
    )
    shell_id, weather_id = acc.calls[0].id, acc.calls[1].id
    assert effects == [
        OpenToolStep(),
        StepDelta(
            {"index": 0, "id": shell_id, "type": "shell", "shell": {"input": "", "outputs": []}}
        ),
        StepDelta({"index": 0, "type": "shell", "shell": {"input": "ls"}}),
        announced(1, weather_id, "get_weather"),
        args_delta(1, '{"city":'),
        StepDelta({"index": 0, "type": "shell", "shell": {"input": " -l"}}),
        args_delta(1, ' "Oslo"}'),
    ]


def test_builtin_results_finish_each_executed_builtin_call_in_index_order() -> None:
    acc = Accumulator(MODEL, builtin={"shell": Shell()})
    feed(acc, call(0, "get_weather", "{}"), call(1, "shell", '{"cmd": "echo'), call(2, "shell"))
    shell_id = acc.calls[1].id
    outputs = [{"type": "logs", "logs": "hi there\n"}]
    done = {
        shell_id: ToolCall(
            shell_id,
            "shell",
            {"input": "echo hi there", "outputs": outputs},
            ModelView("shell", '{"cmd": "echo hi there"}', "hi there\n"),
        ),
        # A function call's id is never in ``done`` in practice; if it were, it is skipped.
        acc.calls[0].id: ToolCall.function(acc.calls[0].id, "get_weather", "{}"),
    }
    # Call 2 did not run (not in ``done``): nothing finishes it.
    assert acc.builtin_results(done) == [
        StepDelta(
            {
                "index": 1,
                "type": "shell",
                "shell": {"input": " hi there", "outputs": outputs},
            }
        )
    ]


def test_a_function_named_like_no_builtin_keeps_the_function_shape() -> None:
    acc = Accumulator(MODEL, builtin={"shell": Shell()})
    effects = feed(acc, call(0, "shell_out", "{}"))
    assert effects[1] == announced(0, acc.calls[0].id, "shell_out")


# --- citations ---------------------------------------------------------------------------


def marker_note(marker: str, start: int, file_id: str, index: int | None = None) -> JsonObject:
    return annotation("file_citation", marker, start, file_id, index)


def test_text_from_an_opening_marker_is_held_back_until_it_closes() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a"}))
    marker = "【0:0†notes.txt】"
    assert feed(acc, text("Paris is big "), text("【0:")) == [
        OpenMessage(),
        text_delta("Paris is big ", annotations=[]),
    ]
    assert feed(acc, text("0†notes"), text(".txt")) == []
    note = marker_note(marker, len("Paris is big "), "file-a", index=0)
    # The delta that carries the whole marker carries its annotation, with its index.
    assert feed(acc, text("】 indeed.")) == [text_delta(marker + " indeed.", annotations=[note])]
    closed = acc.close_message("completed")
    assert closed is not None
    answer = "Paris is big " + marker + " indeed."
    assert closed.content == [text_part(answer, [marker_note(marker, 13, "file-a")])]


def test_several_citations_are_numbered_across_deltas() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a", (0, 1): "file-b"}))
    first, second = "【0:0†a】", "【0:1†b】"
    effects = feed(acc, text("A" + first), text(" B"), text(second))
    deltas = [e.part["text"] for e in effects if isinstance(e, MessageDelta)]
    # The " B" delta has no marker and so no annotations key at all.
    assert [d["value"] for d in deltas] == ["A" + first, " B", second]
    assert "annotations" not in deltas[1]
    notes = [n for d in deltas for n in d.get("annotations", [])]
    assert notes == [
        marker_note(first, 1, "file-a", index=0),
        marker_note(second, 1 + len(first) + 2, "file-b", index=1),
    ]


def test_a_marker_naming_no_known_result_is_plain_text() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a"}))
    effects = feed(acc, text("Hi "), text("【3:9†x】"), text("!"))
    assert effects[1:] == [
        text_delta("Hi ", annotations=[]),
        text_delta("【3:9†x】"),
        text_delta("!"),
    ]
    assert acc.citations.found == []


def test_without_sources_a_bracket_is_not_held_back() -> None:
    acc = Accumulator(MODEL)
    assert feed(acc, text("a 【0:")) == [OpenMessage(), text_delta("a 【0:", annotations=[])]


def test_an_unclosed_marker_is_flushed_at_the_end_of_the_completion() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a"}))
    feed(acc, text("ok 【0:0†"), ChatChunk(finish_reason="stop"))
    assert acc.outcome().text == "ok 【0:0†"
    assert acc.finish_text() == [text_delta("【0:0†")]
    assert acc.finish_text() == []


def test_a_sandbox_link_becomes_a_file_path_annotation() -> None:
    files = {"plot.png": "file-plot"}
    acc = Accumulator(MODEL, citations=CitationStream({}, files=files))
    effects = feed(acc, text("See sandbox:/mnt/da"), text("ta/plot.png"), text(" here"))
    link = "sandbox:/mnt/data/plot.png"
    note = {
        "type": "file_path",
        "text": link,
        "start_index": 4,
        "end_index": 4 + len(link),
        "file_path": {"file_id": "file-plot"},
        "index": 0,
    }
    # The link is held back until a space ends it.
    assert effects == [
        OpenMessage(),
        text_delta("See ", annotations=[]),
        text_delta(link + " here", annotations=[note]),
    ]


# --- images ------------------------------------------------------------------------------


def test_images_open_the_message_before_its_text() -> None:
    acc = Accumulator(MODEL, images=["file-img1", "file-img2"])
    effects = feed(acc, text("Here"), text(" it is"))
    assert effects == [
        OpenMessage(),
        MessageDelta({"type": "image_file", "image_file": {"file_id": "file-img1"}, "index": 0}),
        MessageDelta({"type": "image_file", "image_file": {"file_id": "file-img2"}, "index": 1}),
        # Text is the part after the images.
        text_delta("Here", index=2, annotations=[]),
        text_delta(" it is", index=2),
    ]
    closed = acc.close_message("completed")
    assert closed is not None
    assert closed.content == [
        {"type": "image_file", "image_file": {"file_id": "file-img1"}},
        {"type": "image_file", "image_file": {"file_id": "file-img2"}},
        text_part("Here it is"),
    ]


def test_images_alone_open_no_message() -> None:
    acc = Accumulator(MODEL, images=["file-img1"])
    assert feed(acc, call(0, "f", "{}")) == [
        OpenToolStep(),
        announced(0, acc.calls[0].id, "f"),
        args_delta(0, "{}"),
    ]
    assert acc.close_message("completed") is None


# --- partial content after a cut ---------------------------------------------------------


def test_partial_content_is_the_text_streamed_so_far() -> None:
    acc = Accumulator(MODEL, images=["file-img"])
    feed(acc, text("Hello"), text(" wor"))
    assert acc.partial_content() == [
        {"type": "image_file", "image_file": {"file_id": "file-img"}},
        text_part("Hello wor"),
    ]


def test_partial_content_keeps_text_held_back_for_a_marker() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a"}))
    feed(acc, text("【0:0"))
    # Nothing was sent yet, but what the model wrote is kept.
    assert acc.text == []
    assert acc.partial_content() == [text_part("【0:0")]


def test_partial_content_keeps_found_annotations() -> None:
    acc = Accumulator(MODEL, citations=CitationStream({(0, 0): "file-a"}))
    marker = "【0:0†a】"
    feed(acc, text(marker), text(" and mo"))
    assert acc.partial_content() == [
        text_part(marker + " and mo", [marker_note(marker, 0, "file-a")])
    ]


@pytest.mark.parametrize(
    "chunks",
    [
        [],  # nothing streamed
        [call(0, "f", "{}")],  # only a call: no message
        [text("done"), call(0, "f")],  # the message already closed
    ],
)
def test_no_partial_content_without_an_open_message(chunks: list[ChatChunk]) -> None:
    acc = Accumulator(MODEL)
    feed(acc, *chunks)
    assert acc.partial_content() is None
