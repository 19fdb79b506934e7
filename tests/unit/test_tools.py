"""The built-in tools: the registry (``tools.base``), and the parts of code_interpreter and
file_search that run no code and search nothing (test_file_search_tool.py searches)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from assistd.embeddings.base import EmbedderRegistry
from assistd.embeddings.local import MODEL_NAME
from assistd.retrieval.factory import build_chunk_index
from assistd.sandbox.bubblewrap import BubblewrapSandbox
from assistd.store.blobs import LocalBlobStore
from assistd.store.database import Database
from assistd.store.records import JsonObject, Run
from assistd.store.tool_calls import ModelView, ToolCall
from assistd.tools.base import Offered, ToolRegistry, ToolScope
from assistd.tools.citations import MessageSources
from assistd.tools.code_interpreter import CodeInterpreterTool
from assistd.tools.file_search import FileSearchTool
from tests import store_support

T = TypeVar("T")
PROJECT = "proj-tools"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=120))


def run_record(tools: list[JsonObject], **changes: Any) -> Run:
    """A queued run as services/runs.py makes one; ``changes`` override its fields."""
    return store_support.run_record(project=PROJECT, tools=tools, **changes)


def function(name: str) -> JsonObject:
    return {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}


FS = {"type": "file_search"}
CI = {"type": "code_interpreter"}


@dataclass
class Tools:
    db: Database
    file_search: FileSearchTool
    code: CodeInterpreterTool


@pytest.fixture
def tools(tmp_path: Path) -> Iterator[Tools]:
    """The real tools as services/container.py builds them; nothing here runs a sandbox."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'tools.db'}")
    blobs = LocalBlobStore(tmp_path / "blobs")
    sandbox = BubblewrapSandbox(tmp_path / "sandbox")
    yield Tools(
        db,
        FileSearchTool(db, build_chunk_index(db.dialect), EmbedderRegistry(), MODEL_NAME),
        CodeInterpreterTool(db, blobs, sandbox),
    )
    run_async(db.dispose())


def both(tools: Tools) -> ToolRegistry:
    return ToolRegistry({"file_search": tools.file_search, "code_interpreter": tools.code})


# --- ToolRegistry.offered


def test_offered_maps_function_names_to_the_runs_entries(tools: Tools) -> None:
    fs_entry = {"type": "file_search", "file_search": {"max_num_results": 3}}
    ci_entry = {"type": "code_interpreter"}
    run = run_record([function("lookup"), fs_entry, ci_entry])
    offered = both(tools).offered(run.tools)
    assert list(offered) == ["file_search", "python"]
    assert offered["file_search"] == Offered(tools.file_search, fs_entry)
    assert offered["python"] == Offered(tools.code, ci_entry)
    # The run's own entry (with its options), not a copy: execute reads its options.
    assert offered["file_search"].entry is fs_entry


def test_client_functions_are_never_offered_as_builtins(tools: Tools) -> None:
    assert both(tools).offered([function("lookup"), function("other")]) == {}


@pytest.mark.parametrize(
    ("functions", "expected"),
    [
        (["python"], ["file_search", "builtin_python"]),
        (["file_search"], ["builtin_file_search", "python"]),
        (["file_search", "python"], ["builtin_file_search", "builtin_python"]),
        # Only an exact clash moves a built-in aside.
        (["Python", "file_search_v2"], ["file_search", "python"]),
    ],
)
def test_a_client_function_of_the_same_name_pushes_the_builtin_aside(
    tools: Tools, functions: list[str], expected: list[str]
) -> None:
    run = run_record([FS, CI, *(function(n) for n in functions)])
    offered = both(tools).offered(run.tools)
    assert sorted(offered) == sorted(expected)
    by_type = {o.tool.type: name for name, o in offered.items()}
    assert by_type == {"file_search": expected[0], "code_interpreter": expected[1]}


def test_tools_not_configured_here_are_not_offered(tools: Tools) -> None:
    # code_interpreter off in this process: a run listing it still gets file_search.
    only_search = ToolRegistry({"file_search": tools.file_search})
    offered = only_search.offered([FS, CI])
    assert list(offered) == ["file_search"]
    assert ToolRegistry({}).offered([FS, CI]) == {}


def test_tools_the_run_does_not_list_are_not_offered(tools: Tools) -> None:
    assert list(both(tools).offered([CI])) == ["python"]
    assert both(tools).offered([]) == {}


def test_a_repeated_entry_keeps_the_last(tools: Tools) -> None:
    first = {"type": "file_search", "file_search": {"max_num_results": 1}}
    second = {"type": "file_search", "file_search": {"max_num_results": 2}}
    offered = both(tools).offered([first, second])
    assert offered == {"file_search": Offered(tools.file_search, second)}


# --- ToolRegistry.message_sources


def search_call(call_id: str, *file_ids: str) -> ToolCall:
    results = [{"file_id": f, "file_name": f, "score": 0.5, "content": []} for f in file_ids]
    return ToolCall(
        call_id,
        "file_search",
        {"ranking_options": {}, "results": results},
        ModelView("file_search", "{}", "out"),
    )


def code_call(
    call_id: str, written: dict[str, str], images: list[str], *, model: bool = True
) -> ToolCall:
    outputs: list[JsonObject] = [{"type": "logs", "logs": "ok"}]
    outputs += [{"type": "image", "image": {"file_id": i}} for i in images]
    view = ModelView("python", "{}", "ok", files=written) if model else None
    return ToolCall(call_id, "code_interpreter", {"input": "x", "outputs": outputs}, view)


def test_message_sources_number_searches_among_searches_only(tools: Tools) -> None:
    made = [
        search_call("c1", "file-a", "file-b"),
        ToolCall.function("c2", "lookup", "{}"),
        code_call("c3", {"out.csv": "file-out"}, ["file-img1"]),
        search_call("c4", "file-c"),
        search_call("c5"),  # no results: takes ordinal 2, gives no source
        search_call("c6", "file-a"),
    ]
    sources = both(tools).message_sources(made)
    # The second search is ordinal 1 although it is the fourth call.
    assert sources.sources == {
        (0, 0): "file-a",
        (0, 1): "file-b",
        (1, 0): "file-c",
        (3, 0): "file-a",
    }
    assert sources.files == {"out.csv": "file-out"}
    assert sources.images == ["file-img1"]


def test_message_sources_of_code_later_writes_win_and_images_keep_order(tools: Tools) -> None:
    made = [
        code_call("c1", {"a.csv": "file-a1", "keep.txt": "file-k"}, ["file-i1", "file-i2"]),
        code_call("c2", {"a.csv": "file-a2"}, ["file-i3"]),
        # A call without its model view (nothing hidden was stored) still shows its images.
        code_call("c3", {"lost.csv": "file-lost"}, ["file-i4"], model=False),
    ]
    sources = both(tools).message_sources(made)
    assert sources.files == {"a.csv": "file-a2", "keep.txt": "file-k"}
    assert sources.images == ["file-i1", "file-i2", "file-i3", "file-i4"]
    assert sources.sources == {}


def test_message_sources_ignore_calls_of_tools_not_configured(tools: Tools) -> None:
    made = [code_call("c1", {"a.csv": "file-a"}, ["file-i"]), search_call("c2", "file-x")]
    sources = ToolRegistry({"file_search": tools.file_search}).message_sources(made)
    assert sources == MessageSources(sources={(0, 0): "file-x"}, files={}, images=[])
    assert ToolRegistry({}).message_sources(made) == MessageSources()


def test_annotate_adds_to_what_is_there(tools: Tools) -> None:
    into = MessageSources(sources={(9, 9): "file-old"}, files={"a.csv": "file-old"})
    tools.file_search.annotate([search_call("c1", "file-new")], into)
    tools.code.annotate([code_call("c2", {"a.csv": "file-new"}, [])], into)
    assert into.sources == {(9, 9): "file-old", (0, 0): "file-new"}
    assert into.files == {"a.csv": "file-new"}


# --- code_interpreter: definition, announce, streaming


def test_code_interpreter_definition_and_announce(tools: Tools) -> None:
    definition = tools.code.definition(CI)
    assert definition["name"] == "python"
    assert definition["parameters"] == {
        "type": "object",
        "properties": {"code": {"type": "string", "description": "The Python code to run."}},
        "required": ["code"],
    }
    assert "/mnt/data" in definition["description"]
    assert "sandbox:/mnt/data/<name>" in definition["description"]
    first = tools.code.announce("call_1")
    assert first == {
        "id": "call_1",
        "type": "code_interpreter",
        "code_interpreter": {"input": "", "outputs": []},
    }
    # Each announcement is its own object: the executor fills it in as the call goes on.
    first["code_interpreter"]["outputs"].append({"type": "logs"})
    assert tools.code.announce("call_2")["code_interpreter"] == {"input": "", "outputs": []}


@pytest.mark.parametrize(
    ("arguments", "shown"),
    [
        ("", None),
        ("   ", None),
        ("print(1)", "print(1)"),  # bare code, as some models send it
        ("  x = 1", "  x = 1"),
        ("{", None),
        ('{"co', None),
        ('{"code": ', None),
        ('{"code": "', ""),
        ('{"code": "pri', "pri"),
        ('{"code":"a', "a"),
        (' { "code" : "a', "a"),
        ('{"code": "a\\', "a"),  # an escape cut in two waits for its second half
        ('{"code": "a\\n', "a\n"),
        ('{"code": "a\\"b', 'a"b'),
        ('{"code": "a\\u00', "a"),
        ('{"code": "a\\u00e9', "aé"),
        ('{"code": "\\ud83d', ""),  # half a surrogate pair
        ('{"code": "\\ud83d\\ude00', "😀"),
        ('{"code": "done"}', "done"),  # stops at the closing quote
        ('{"code": "done", "x": "more"}', "done"),
        ('{"other": 1, "code": "x"', None),  # code must come first to be streamed
        ('{"input": "x"', None),
    ],
)
def test_input_delta_on_partial_arguments(tools: Tools, arguments: str, shown: str | None) -> None:
    assert tools.code.input_delta(arguments) == shown


def test_input_delta_grows_with_every_prefix(tools: Tools) -> None:
    code = 'for i in range(3):\n\tprint("é\\\\", i)  # 😀'
    arguments = json.dumps({"code": code})
    seen = [tools.code.input_delta(arguments[:i]) for i in range(len(arguments) + 1)]
    assert seen[-1] == code
    shown = [s for s in seen if s is not None]
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(shown))
    assert shown[0] == ""


def finished(code: str, outputs: list[JsonObject]) -> ToolCall:
    return ToolCall("call_1", "code_interpreter", {"input": code, "outputs": outputs})


LOGS = {"type": "logs", "logs": "3\n"}
IMAGE = {"type": "image", "image": {"file_id": "file-img"}}


@pytest.mark.parametrize(
    ("code", "streamed", "outputs", "delta"),
    [
        ("print(3)", "print(3)", [], None),
        ("print(3)", "pri", [], {"input": "nt(3)"}),
        ("print(3)", "", [], {"input": "print(3)"}),
        (
            "print(3)",
            "print(3)",
            [LOGS, IMAGE],
            {"outputs": [{"index": 0, **LOGS}, {"index": 1, **IMAGE}]},
        ),
        ("print(3)", "pr", [LOGS], {"input": "int(3)", "outputs": [{"index": 0, **LOGS}]}),
        # What was streamed is not the code's start (the arguments were not decodable as
        # streamed): nothing is appended, since appending could not fix it.
        ("print(3)", "x", [], None),
        ("print(3)", "print(3) and more", [LOGS], {"outputs": [{"index": 0, **LOGS}]}),
    ],
)
def test_result_delta_completes_the_streamed_call(
    tools: Tools,
    code: str,
    streamed: str,
    outputs: list[JsonObject],
    delta: JsonObject | None,
) -> None:
    expected = None if delta is None else {"type": "code_interpreter", "code_interpreter": delta}
    assert tools.code.result_delta(finished(code, outputs), streamed) == expected


def test_file_search_does_not_stream_its_call(tools: Tools) -> None:
    # The base class's defaults: nothing to show while the model writes the queries.
    assert tools.file_search.input_delta('{"queries": ["a"') is None
    assert tools.file_search.result_delta(search_call("c1", "file-a"), "") is None


# --- code_interpreter: execute where no code runs


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        ('{"code": "print(1)"}', "print(1)"),
        ('{"input": "print(2)"}', "print(2)"),  # the wire's own field name
        ("print(3)", "print(3)"),  # bare code
        ('"print(4)"', "print(4)"),  # a JSON string
        ('{"code": 5}', ""),
        ('{"code": "x"', ""),  # broken JSON that starts as an object is no code
        ("[1, 2]", ""),
        ("", ""),
    ],
)
def test_an_unavailable_sandbox_answers_in_the_logs(
    tools: Tools, arguments: str, code: str
) -> None:
    tools.code.unavailable = "bubblewrap is missing"
    call = run_async(
        tools.code.execute(ToolScope.of_run(run_record([CI])), CI, "call_9", arguments, 0)
    )
    message = "The code interpreter is not available on this server: bubblewrap is missing"
    assert call == ToolCall(
        "call_9",
        "code_interpreter",
        {"input": code, "outputs": [{"type": "logs", "logs": message}]},
        ModelView("python", arguments, message),
    )


@pytest.mark.parametrize("arguments", ['{"code": ""}', '{"code": "  \\n "}', "{}", "   "])
def test_no_code_is_told_how_to_call(tools: Tools, arguments: str) -> None:
    call = run_async(
        tools.code.execute(ToolScope.of_run(run_record([CI])), CI, "call_1", arguments, 0)
    )
    message = 'No code was given: call python with {"code": "<Python code>"}.'
    assert call.section["outputs"] == [{"type": "logs", "logs": message}]
    assert call.model is not None
    assert call.model.output == message
    assert (call.model.files, call.model.staged) == ({}, {})


def test_long_logs_are_cut_for_the_model_only(tools: Tools) -> None:
    reason = "".join(f"{i:05d}" for i in range(2000))  # 10,000 characters
    tools.code.unavailable = reason
    logs = f"The code interpreter is not available on this server: {reason}"
    call = run_async(tools.code.execute(ToolScope.of_run(run_record([CI])), CI, "c", "print(1)", 0))
    assert call.section["outputs"] == [{"type": "logs", "logs": logs}]  # the step keeps all
    assert call.model is not None
    # 8,000 characters for the model: the first and last 4,000 around a marker.
    assert call.model.output == logs[:4000] + "\n...[output truncated]...\n" + logs[-4000:]
    # A small context's budget (tokens) cuts to three characters a token.
    small = run_async(
        tools.code.execute(ToolScope.of_run(run_record([CI])), CI, "c", "print(1)", 0, budget=100)
    )
    assert small.model is not None
    assert small.model.output == logs[:150] + "\n...[output truncated]...\n" + logs[-150:]
    # A budget above the cap changes nothing.
    large = run_async(
        tools.code.execute(ToolScope.of_run(run_record([CI])), CI, "c", "print(1)", 0, budget=10**6)
    )
    assert large.model == call.model


# --- file_search: definition, announce, annotate


def test_file_search_definition_and_announce(tools: Tools) -> None:
    definition = tools.file_search.definition({"type": "file_search", "file_search": {}})
    assert definition["name"] == "file_search"
    assert definition["parameters"]["required"] == ["queries"]
    assert definition["parameters"]["properties"]["queries"]["type"] == "array"
    assert definition["parameters"]["properties"]["queries"]["items"] == {"type": "string"}
    # The model is shown the marker form it is to copy.
    assert "【0:1†source】" in definition["description"]
    # Options of the entry do not change what the model sees.
    assert (
        tools.file_search.definition({"type": "file_search", "file_search": {"max_num_results": 2}})
        == definition
    )
    assert tools.file_search.announce("call_7") == {
        "id": "call_7",
        "type": "file_search",
        "file_search": {},
    }
